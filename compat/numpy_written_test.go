package compat_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"mmpbridge/bridge"
	"mmpbridge/internal/pyrun"
	"mmpbridge/internal/render"
)

// TestReadNumpyWritten reads files whose values are the pickles numpy 1.x and
// numpy 2.x themselves write (numpy 2 names numpy._core.multiarray and
// numpy.ma), laid out by mmpwrite.py, a small writer of our own.
func TestReadNumpyWritten(t *testing.T) {
	script, err := os.ReadFile("mmpwrite.py")
	if err != nil {
		t.Fatal(err)
	}
	envs := map[string]func(testing.TB) *pyrun.Env{"numpy1": pyrun.Numpy1, "numpy2": pyrun.Numpy2}
	for name, env := range envs {
		t.Run(name, func(t *testing.T) {
			e := env(t)
			out := filepath.Join(t.TempDir(), "np.mmpkl")
			stdout := e.Run(t, string(script), out)
			var want struct {
				Numpy string                     `json:"numpy"`
				Keys  map[string]json.RawMessage `json:"keys"`
			}
			if err := json.Unmarshal([]byte(stdout), &want); err != nil {
				t.Fatalf("%v: %s", err, stdout)
			}
			f, err := bridge.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			keys, _ := f.Keys()
			if len(keys) != len(want.Keys) {
				t.Fatalf("keys %q, want %d", keys, len(want.Keys))
			}
			for _, k := range keys {
				v, err := f.Get(k)
				if err != nil {
					t.Errorf("%s: %v", k, err)
					continue
				}
				var got any
				switch v := v.(type) {
				case *bridge.Array:
					got = describeArray(t, v)
				case *bridge.Masked:
					got = map[string]any{"kind": "masked", "data": describeArray(t, v.Data), "mask": describeArray(t, v.Mask)}
					if v.Fill == nil {
						t.Errorf("%s: fill value lost", k)
					}
				default:
					j, _ := render.JSONValue(v)
					got = map[string]any{"kind": "value", "json": j}
				}
				gb, _ := json.Marshal(got)
				var g, w any
				json.Unmarshal(gb, &g)
				json.Unmarshal(want.Keys[k], &w)
				if !cmp.Equal(g, w) {
					t.Errorf("numpy %s %s: got %s, want %s", want.Numpy, k, gb, want.Keys[k])
				}
			}
		})
	}
}

func describeArray(t *testing.T, a *bridge.Array) map[string]any {
	return map[string]any{"kind": "array", "dtype": a.DType.String(), "shape": append([]int{}, a.Shape...),
		"order": string(a.Order()), "sha256": cSHA(t, a)}
}
