package convert

import (
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
)

func TestWithoutLayoutRecords(t *testing.T) {
	lay := bridge.Dict{{Key: "chunks", Value: []any{int64(8)}}}
	v := bridge.Dict{
		{Key: "/a", Value: bridge.Dict{{Key: metaLayout, Value: lay}}},
		{Key: "/b", Value: bridge.Dict{{Key: metaLayout, Value: lay}, {Key: "units", Value: "m"}, {Key: metaEnum, Value: bridge.Dict{{Key: "X", Value: int64(1)}}}}},
	}
	if got, want := render.Repr(withoutLayoutRecords(v), 0), "{'/b': {'units': 'm', '__enum__': {'X': 1}}}"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got := withoutLayoutRecords(bridge.Dict{{Key: "/a", Value: bridge.Dict{{Key: metaLayout, Value: lay}}}}); got != nil {
		t.Errorf("only layouts: got %s, want nil", render.Repr(got, 0))
	}
}
