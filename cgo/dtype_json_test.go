package main

import (
	"encoding/json"
	"reflect"
	"testing"

	"mmpbridge/bridge"
)

func TestDTypeJSON(t *testing.T) {
	t.Parallel()
	p := func(s string) bridge.DType {
		d, err := bridge.ParseDType(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	st := func(size int, aligned bool, fs ...bridge.Field) bridge.DType {
		d, err := bridge.StructDType(fs, size, aligned)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	sub := func(base bridge.DType, shape ...int) bridge.DType {
		d, err := bridge.SubArrayDType(base, shape)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	i4 := p("<i4")
	inner := st(12, false, bridge.Field{Name: "x", DType: p("<f8")}, bridge.Field{Name: "y", DType: i4, Offset: 8})
	for _, tc := range []struct {
		name string
		d    bridge.DType
		want string
	}{
		{"plain", p(">f8"), `">f8"`},
		{"datetime", p("<M8[ms]"), `"<M8[ms]"`},
		{"overlap", st(6, false, bridge.Field{Name: "a", DType: i4}, bridge.Field{Name: "b", DType: i4, Offset: 2}),
			`{"names":["a","b"],"formats":["<i4","<i4"],"offsets":[0,2],"itemsize":6,"aligned":false}`},
		{"padded", st(16, false, bridge.Field{Name: "a", DType: p("|u1"), Offset: 3}),
			`{"names":["a"],"formats":["|u1"],"offsets":[3],"itemsize":16,"aligned":false}`},
		{"aligned", st(16, true, bridge.Field{Name: "a", DType: p("|u1")}, bridge.Field{Name: "b", DType: p("<f8"), Offset: 8}),
			`{"names":["a","b"],"formats":["|u1","<f8"],"offsets":[0,8],"itemsize":16,"aligned":true}`},
		{"subarray", st(24, false, bridge.Field{Name: "m", DType: sub(i4, 2, 3)}),
			`{"names":["m"],"formats":[["<i4",[2,3]]],"offsets":[0],"itemsize":24,"aligned":false}`},
		{"nested", st(40, false, bridge.Field{Name: "p", DType: inner, Offset: 4}, bridge.Field{Name: "q", DType: sub(inner, 2), Offset: 16}),
			`{"names":["p","q"],"formats":[{"names":["x","y"],"formats":["<f8","<i4"],"offsets":[0,8],"itemsize":12,"aligned":false},` +
				`[{"names":["x","y"],"formats":["<f8","<i4"],"offsets":[0,8],"itemsize":12,"aligned":false},[2]]],"offsets":[4,16],"itemsize":40,"aligned":false}`},
	} {
		b, err := json.Marshal(dtypeJSON(tc.d))
		var got, want any
		if err == nil {
			err = json.Unmarshal(b, &got)
		}
		if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
			t.Fatal(err)
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %s (%v), want %s", tc.name, b, err, tc.want)
		}
	}
}
