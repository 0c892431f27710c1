package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mmpbridge/bridge"
	"mmpbridge/internal/pyrun"
	"mmpbridge/pyval"
)

// reprScript prints, for each file (argv), {key: repr(value)} of plain
// pickle.load; a file it cannot load maps to null.
const reprScript = `
import collections, json, pickle, sys, warnings
warnings.simplefilter("ignore")

def r(v):
    """repr, with Python 3.12's OrderedDict({...}) on older Pythons."""
    if sys.version_info >= (3, 12):
        return repr(v)
    if type(v) is collections.OrderedDict:
        return "OrderedDict(%s)" % (r(dict(v)) if v else "")
    if type(v) is list:
        return "[" + ", ".join(map(r, v)) + "]"
    if type(v) is tuple:
        return "(" + ", ".join(map(r, v)) + ("," if len(v) == 1 else "") + ")"
    if type(v) is dict:
        return "{" + ", ".join(r(k) + ": " + r(x) for k, x in v.items()) + "}"
    return repr(v)

out = {}
for p in sys.argv[1:]:
    try:
        with open(p, "rb") as f:
            d = pickle.load(f)
    except Exception:
        out[p] = None
        continue
    out[p] = {}
    for k, v in d.items():
        try:
            out[p][k] = r(v)
        except Exception:  # a cycle (the bridge refuses it), an int too long to print, an array numpy cannot print
            pass
json.dump(out, sys.stdout)
`

// comparable tells whether Repr of v is meant to equal Python's repr: not
// for arrays (Repr describes them), undecoded objects, sets (Python prints
// them in hash order, Repr in the pickle's), nor ints too long to print.
func comparable(v any) bool {
	switch v := v.(type) {
	case *bridge.Array, *bridge.Masked, pyval.Object, pyval.Set, pyval.FrozenSet:
		return false
	case *big.Int:
		return v.BitLen() < 14_000
	case []any:
		return all(v)
	case pyval.Tuple:
		return all(v)
	case pyval.OrderedDict:
		return comparable(pyval.Dict(v))
	case pyval.Dict:
		for _, it := range v {
			if !comparable(it.Key) || !comparable(it.Value) {
				return false
			}
		}
	}
	return true
}

func all(vs []any) bool {
	for _, v := range vs {
		if !comparable(v) {
			return false
		}
	}
	return true
}

// TestReprPython: what ls and get print for a value is what Python's repr
// prints for the value plain pickle.load gives on numpy 2, over the bridge's
// plain test pickles (random and hand-made values, every kind of numpy
// scalar). (The reference corpus does not load on numpy >= 2.3.)
func TestReprPython(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join("..", "..", "bridge", "testdata", "pickles", "plain", "*.mmpkl"))
	if len(files) < 100 {
		t.Fatalf("%d test files", len(files))
	}
	out := pyrun.Numpy2(t).Run(t, reprScript, files...)
	var want map[string]map[string]string
	if err := json.Unmarshal([]byte(out), &want); err != nil {
		t.Fatalf("%v\n%.500s", err, out)
	}
	compared := 0
	for _, f := range files {
		w := want[f]
		if w == nil {
			t.Errorf("%s: plain pickle.load fails", f)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := bridge.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, k := range r.Keys() {
			v, err := r.Get(k)
			if errors.Is(err, bridge.ErrUnsupported) {
				continue // a cycle
			}
			if err != nil {
				t.Errorf("%s: key %q: %v", f, k, err)
				continue
			}
			if !comparable(v) {
				continue
			}
			compared++
			if got := Repr(v, 0); got != w[k] {
				t.Errorf("%s: key %q:\n got %s\nwant %s", filepath.Base(f), k, trunc(got), trunc(w[k]))
			}
		}
	}
	t.Logf("%d values compared with Python's repr", compared)
	if compared < 200 {
		t.Errorf("only %d values compared", compared)
	}
}

func trunc(s string) string {
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
