package bridge

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"mmpbridge/internal/pyrun"
	"mmpbridge/pyval"
)

// numpyForms pickles, with numpy itself, every plain form the machine must
// take as numpy writes it: dtypes of every kind and byte order (datetimes
// of every unit), scalars, arrays (0-d, empty, Fortran), masked arrays with
// and without a fill value. Each value is pickle.dumps(v, 4) after
// mmappickle's clean-up (vtDumpFix), arrays at protocol 5 too (numpy's
// _frombuffer form, writable and read-only).
const numpyForms = `
import json, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
kinds = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "f16", "c8", "c16", "c32",
         "U1", "U7", "S1", "S5", "V1", "V8"]
kinds += [k.replace("<", ">") for k in ["<i2", "<i8", "<u4", "<f4", "<f8", "<c16", "<U3", "<f2"]]
kinds += [f"{t}8[{u}]" for t in "Mm" for u in ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as", "10ms", "3D"]]
kinds += ["M8", "m8", ">M8[s]"]
forms = {}
rng = np.random.default_rng(5)
def raw(dt, n):
    b = rng.integers(0, 256, n * dt.itemsize, dtype=np.uint8).tobytes()
    if dt.kind == "U":
        a = np.frombuffer(b, dtype="<u4").copy() % 0x10000
        a[(a >= 0xd800) & (a < 0xe000)] = 65
        b = a.astype(dt.byteorder.replace("|", "<").replace("=", "<") + "u4").tobytes()
    if dt.kind == "b":
        b = bytes(x & 1 for x in b)
    return b
for k in kinds:
    dt = np.dtype(k)
    forms["dtype " + k] = dt
    a = np.frombuffer(raw(dt, 6), dtype=dt).reshape(2, 3).copy()
    forms["array " + k] = a
    forms["array F " + k] = np.asfortranarray(a)
    forms["array 0-d " + k] = a[:1, :1].reshape(())
    forms["array empty " + k] = a[:0]
    if dt.kind != "V":
        forms["scalar " + k] = a[0, 1]
    m = np.ma.masked_array(a, mask=[[0, 1, 0], [1, 0, 0]])
    forms["masked " + k] = m
    if dt.kind not in "V":
        f = np.ma.masked_array(a.copy(), mask=[[0, 0, 1], [1, 0, 0]])
        f.fill_value = a[1, 2]
        forms["masked fill " + k] = f
structs = {
    "struct": [("x", "<f8"), ("y", "<i4", (2,)), ("n", [("a", "u1"), ("b", ">i2")])],
    "struct U": [("s", "<U3"), ("x", "<f8")],
    "struct M": [("t", "<M8[ms]"), ("d", ">m8[D]")],
    "struct sub-struct": [("p", [("a", "u1"), ("b", "<f4")], (2,))],
    "struct sub-U 2-d": [("u", "<U2", (2, 3)), ("c", "<c16")],
    "struct aligned": np.dtype([("x", "u1"), ("y", "<f8")], align=True),
    "struct nested aligned": np.dtype([("x", "u1"), ("n", np.dtype([("a", "u1"), ("b", "<f8")], align=True))], align=True),
    "struct inner aligned": [("x", "u1"), ("n", np.dtype([("a", "u1"), ("b", "<f8")], align=True))],
    "struct offsets": np.dtype({"names": ["a", "b"], "formats": ["u1", "<i4"], "offsets": [0, 8], "itemsize": 16}),
    "struct S bool": [("s", "S3"), ("b", "?")],
    "struct unicode name": [("température", "<f4"), ("n'x\"", "<i2")],
    "struct many": [(f"f{i}", "<i2") for i in range(40)],
}
for k, spec in structs.items():
    dt = np.dtype(spec)
    forms["dtype " + k] = dt
    a = np.frombuffer(raw(np.dtype("u1"), 6 * dt.itemsize), dtype=dt).reshape(2, 3).copy()
    forms["array " + k] = a
    forms["array F " + k] = np.asfortranarray(a)
    forms["array 0-d " + k] = a[:1, :1].reshape(())
    forms["array empty " + k] = a[:0]
    forms["scalar " + k] = a[0, 1]
forms["masked empty"] = np.ma.masked_array(np.zeros(0), mask=np.zeros(0, bool))
forms["masked 0-d"] = np.ma.masked_array(np.float32(1.5), mask=True)
out = {}
for name, v in forms.items():
    p, end = dump_fix(v, 1)
    out[name] = p.hex()
    if name.startswith("array"):  # numpy's protocol 5 form: _frombuffer
        p, end = dump_fix(v, 1, 5)
        out[name + " (protocol 5)"] = p.hex()
        r = v.copy()
        r.flags.writeable = False  # read-only: bytes, not a bytearray
        p, end = dump_fix(r, 1, 5)
        out[name + " (protocol 5, read-only)"] = p.hex()
print(json.dumps({"numpy": np.__version__, "forms": out}))
`

// TestNumpyForms: every form numpy 1.x and 2.x writes for a plain dtype,
// array, scalar or masked array is what the machine builds, and verifies.
func TestNumpyForms(t *testing.T) {
	t.Parallel()
	for _, env := range pyrun.Numpys(t) {
		t.Run(env.Name, func(t *testing.T) {
			t.Parallel()
			var res struct {
				Numpy string            `json:"numpy"`
				Forms map[string]string `json:"forms"`
			}
			if err := json.Unmarshal([]byte(env.Run(t, vtDumpFix+numpyForms)), &res); err != nil {
				t.Fatal(err)
			}
			if len(res.Forms) < 1000 {
				t.Fatalf("only %d forms", len(res.Forms))
			}
			dir := t.TempDir()
			var cases []pmCase
			seen := 0
			for name, h := range res.Forms {
				p, err := hex.DecodeString(h)
				if err != nil {
					t.Fatal(err)
				}
				v, err := vtDecode(p)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if o, ok := v.(pyval.Object); ok {
					t.Errorf("%s: undecoded: %s.%s: %s", name, o.Module, o.Name, o.Why)
					continue
				}
				want := map[byte]string{'d': "DType", 'a': "*Array", 's': "Scalar", 'm': "*Masked"}[name[0]]
				if got := fmt.Sprintf("%T", v); got != "bridge."+want && got != "*bridge."+want[1:] {
					t.Errorf("%s: decoded as %T", name, v)
				}
				f := testFile(testEntryMemo("v", p, true, 1000))
				rep, err := Verify(bytesReaderAt(f), int64(len(f)), nil)
				if err != nil {
					t.Fatal(err)
				}
				if !rep.OK() {
					t.Errorf("%s: verify: %+v %v", name, rep.Findings, rep.Structure)
				}
				// -short: every form is decoded and verified, one in ten is
				// also loaded by Python (the full run checks them all).
				if seen++; testing.Short() && seen%10 != 0 {
					continue
				}
				path := filepath.Join(dir, fmt.Sprintf("f%04d.mmpkl", len(cases)))
				if err := os.WriteFile(path, f, 0o644); err != nil {
					t.Fatal(err)
				}
				cases = append(cases, pmRead(t, path))
			}
			// And each one is, as the bridge reads it, what pickle.load gives.
			for path, r := range pmCheck(t, env, cases) {
				if r.Status != "loaded" || len(r.Mismatches) > 0 {
					t.Errorf("%s: %s %s %v", path, r.Status, r.Error, r.Mismatches)
				}
			}
			t.Logf("%s: %d forms", env, len(res.Forms))
		})
	}
}
