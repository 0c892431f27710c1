package convert

import (
	"testing"

	"mmpbridge/internal/render"
	"mmpbridge/pyval"
)

func TestWithoutLayoutRecords(t *testing.T) {
	lay := pyval.Dict{{Key: "chunks", Value: []any{int64(8)}}}
	v := pyval.Dict{
		{Key: "/a", Value: pyval.Dict{{Key: metaLayout, Value: lay}}},
		{Key: "/b", Value: pyval.Dict{{Key: metaLayout, Value: lay}, {Key: "units", Value: "m"}, {Key: metaEnum, Value: pyval.Dict{{Key: "X", Value: int64(1)}}}}},
	}
	if got, want := render.Repr(withoutLayoutRecords(v), 0), "{'/b': {'units': 'm', '__enum__': {'X': 1}}}"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got := withoutLayoutRecords(pyval.Dict{{Key: "/a", Value: pyval.Dict{{Key: metaLayout, Value: lay}}}}); got != nil {
		t.Errorf("only layouts: got %s, want nil", render.Repr(got, 0))
	}
}
