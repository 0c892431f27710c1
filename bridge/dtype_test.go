package bridge

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"mmpbridge/internal/pyrun"
)

// dtypeCases are accepted dtype spellings with the DType each must give and
// numpy's dtype.str / str(dtype) for it.
var dtypeCases = []struct {
	in   string
	want DType
	str  string // numpy dtype.str
	name string // numpy str(dtype)
}{
	// dtype.str forms
	{"<f8", DType{ByteOrder: '<', Kind: 'f', ItemSize: 8, Unit: "", UnitCount: 0}, "<f8", "float64"},
	{">f8", DType{ByteOrder: '>', Kind: 'f', ItemSize: 8, Unit: "", UnitCount: 0}, ">f8", ">f8"},
	{"<f2", DType{ByteOrder: '<', Kind: 'f', ItemSize: 2, Unit: "", UnitCount: 0}, "<f2", "float16"},
	{"<f4", DType{ByteOrder: '<', Kind: 'f', ItemSize: 4, Unit: "", UnitCount: 0}, "<f4", "float32"},
	{"<f16", DType{ByteOrder: '<', Kind: 'f', ItemSize: 16, Unit: "", UnitCount: 0}, "<f16", "float128"},
	{"|b1", DType{ByteOrder: '|', Kind: 'b', ItemSize: 1, Unit: "", UnitCount: 0}, "|b1", "bool"},
	{"|i1", DType{ByteOrder: '|', Kind: 'i', ItemSize: 1, Unit: "", UnitCount: 0}, "|i1", "int8"},
	{"|u1", DType{ByteOrder: '|', Kind: 'u', ItemSize: 1, Unit: "", UnitCount: 0}, "|u1", "uint8"},
	{"<i2", DType{ByteOrder: '<', Kind: 'i', ItemSize: 2, Unit: "", UnitCount: 0}, "<i2", "int16"},
	{">i4", DType{ByteOrder: '>', Kind: 'i', ItemSize: 4, Unit: "", UnitCount: 0}, ">i4", ">i4"},
	{"<u8", DType{ByteOrder: '<', Kind: 'u', ItemSize: 8, Unit: "", UnitCount: 0}, "<u8", "uint64"},
	{"<c8", DType{ByteOrder: '<', Kind: 'c', ItemSize: 8, Unit: "", UnitCount: 0}, "<c8", "complex64"},
	{">c16", DType{ByteOrder: '>', Kind: 'c', ItemSize: 16, Unit: "", UnitCount: 0}, ">c16", ">c16"},
	{"<c32", DType{ByteOrder: '<', Kind: 'c', ItemSize: 32, Unit: "", UnitCount: 0}, "<c32", "complex256"},
	{"<M8", DType{ByteOrder: '<', Kind: 'M', ItemSize: 8, Unit: "", UnitCount: 0}, "<M8", "datetime64"},
	{"<M8[D]", DType{ByteOrder: '<', Kind: 'M', ItemSize: 8, Unit: "D", UnitCount: 1}, "<M8[D]", "datetime64[D]"},
	{">M8[s]", DType{ByteOrder: '>', Kind: 'M', ItemSize: 8, Unit: "s", UnitCount: 1}, ">M8[s]", ">M8[s]"},
	{"<m8[10ms]", DType{ByteOrder: '<', Kind: 'm', ItemSize: 8, Unit: "ms", UnitCount: 10}, "<m8[10ms]", "timedelta64[10ms]"},
	{"<m8[ns]", DType{ByteOrder: '<', Kind: 'm', ItemSize: 8, Unit: "ns", UnitCount: 1}, "<m8[ns]", "timedelta64[ns]"},
	{"<U3", DType{ByteOrder: '<', Kind: 'U', ItemSize: 12, Unit: "", UnitCount: 0}, "<U3", "<U3"},
	{">U3", DType{ByteOrder: '>', Kind: 'U', ItemSize: 12, Unit: "", UnitCount: 0}, ">U3", ">U3"},
	{"|S2", DType{ByteOrder: '|', Kind: 'S', ItemSize: 2, Unit: "", UnitCount: 0}, "|S2", "|S2"},
	{"|V4", DType{ByteOrder: '|', Kind: 'V', ItemSize: 4, Unit: "", UnitCount: 0}, "|V4", "|V4"},
	// str(dtype) names
	{"float64", DType{ByteOrder: '<', Kind: 'f', ItemSize: 8, Unit: "", UnitCount: 0}, "<f8", "float64"},
	{"float16", DType{ByteOrder: '<', Kind: 'f', ItemSize: 2, Unit: "", UnitCount: 0}, "<f2", "float16"},
	{"float128", DType{ByteOrder: '<', Kind: 'f', ItemSize: 16, Unit: "", UnitCount: 0}, "<f16", "float128"},
	{"bool", DType{ByteOrder: '|', Kind: 'b', ItemSize: 1, Unit: "", UnitCount: 0}, "|b1", "bool"},
	{"int8", DType{ByteOrder: '|', Kind: 'i', ItemSize: 1, Unit: "", UnitCount: 0}, "|i1", "int8"},
	{"int64", DType{ByteOrder: '<', Kind: 'i', ItemSize: 8, Unit: "", UnitCount: 0}, "<i8", "int64"},
	{"uint16", DType{ByteOrder: '<', Kind: 'u', ItemSize: 2, Unit: "", UnitCount: 0}, "<u2", "uint16"},
	{"uint64", DType{ByteOrder: '<', Kind: 'u', ItemSize: 8, Unit: "", UnitCount: 0}, "<u8", "uint64"},
	{"complex128", DType{ByteOrder: '<', Kind: 'c', ItemSize: 16, Unit: "", UnitCount: 0}, "<c16", "complex128"},
	{"complex256", DType{ByteOrder: '<', Kind: 'c', ItemSize: 32, Unit: "", UnitCount: 0}, "<c32", "complex256"},
	{"datetime64", DType{ByteOrder: '<', Kind: 'M', ItemSize: 8, Unit: "", UnitCount: 0}, "<M8", "datetime64"},
	{"datetime64[D]", DType{ByteOrder: '<', Kind: 'M', ItemSize: 8, Unit: "D", UnitCount: 1}, "<M8[D]", "datetime64[D]"},
	{"datetime64[2us]", DType{ByteOrder: '<', Kind: 'M', ItemSize: 8, Unit: "us", UnitCount: 2}, "<M8[2us]", "datetime64[2us]"},
	{"timedelta64[10ms]", DType{ByteOrder: '<', Kind: 'm', ItemSize: 8, Unit: "ms", UnitCount: 10}, "<m8[10ms]", "timedelta64[10ms]"},
	// short forms and other spellings numpy accepts
	{"f8", DType{ByteOrder: '<', Kind: 'f', ItemSize: 8, Unit: "", UnitCount: 0}, "<f8", "float64"},
	{"=f8", DType{ByteOrder: '<', Kind: 'f', ItemSize: 8, Unit: "", UnitCount: 0}, "<f8", "float64"},
	{"|f8", DType{ByteOrder: '<', Kind: 'f', ItemSize: 8, Unit: "", UnitCount: 0}, "<f8", "float64"},
	{"f2", DType{ByteOrder: '<', Kind: 'f', ItemSize: 2, Unit: "", UnitCount: 0}, "<f2", "float16"},
	{"i4", DType{ByteOrder: '<', Kind: 'i', ItemSize: 4, Unit: "", UnitCount: 0}, "<i4", "int32"},
	{"b1", DType{ByteOrder: '|', Kind: 'b', ItemSize: 1, Unit: "", UnitCount: 0}, "|b1", "bool"},
	{"<b1", DType{ByteOrder: '|', Kind: 'b', ItemSize: 1, Unit: "", UnitCount: 0}, "|b1", "bool"},
	{">i1", DType{ByteOrder: '|', Kind: 'i', ItemSize: 1, Unit: "", UnitCount: 0}, "|i1", "int8"},
	{"?", DType{ByteOrder: '|', Kind: 'b', ItemSize: 1, Unit: "", UnitCount: 0}, "|b1", "bool"},
	{"U3", DType{ByteOrder: '<', Kind: 'U', ItemSize: 12, Unit: "", UnitCount: 0}, "<U3", "<U3"},
	{"|U3", DType{ByteOrder: '<', Kind: 'U', ItemSize: 12, Unit: "", UnitCount: 0}, "<U3", "<U3"},
	{"S2", DType{ByteOrder: '|', Kind: 'S', ItemSize: 2, Unit: "", UnitCount: 0}, "|S2", "|S2"},
	{"<S2", DType{ByteOrder: '|', Kind: 'S', ItemSize: 2, Unit: "", UnitCount: 0}, "|S2", "|S2"},
	{"V4", DType{ByteOrder: '|', Kind: 'V', ItemSize: 4, Unit: "", UnitCount: 0}, "|V4", "|V4"},
	{"M8", DType{ByteOrder: '<', Kind: 'M', ItemSize: 8, Unit: "", UnitCount: 0}, "<M8", "datetime64"},
	{"M8[s]", DType{ByteOrder: '<', Kind: 'M', ItemSize: 8, Unit: "s", UnitCount: 1}, "<M8[s]", "datetime64[s]"},
	{"M8[1D]", DType{ByteOrder: '<', Kind: 'M', ItemSize: 8, Unit: "D", UnitCount: 1}, "<M8[D]", "datetime64[D]"},
	{"M8[μs]", DType{ByteOrder: '<', Kind: 'M', ItemSize: 8, Unit: "us", UnitCount: 1}, "<M8[us]", "datetime64[us]"},
	{"m8[10ms]", DType{ByteOrder: '<', Kind: 'm', ItemSize: 8, Unit: "ms", UnitCount: 10}, "<m8[10ms]", "timedelta64[10ms]"},
	{"f08", DType{ByteOrder: '<', Kind: 'f', ItemSize: 8, Unit: "", UnitCount: 0}, "<f8", "float64"},
}

// dtypeRejects are spellings ParseDType refuses; unsupported says the error
// wraps ErrUnsupported (numpy knows the type, the bridge cannot hold it).
var dtypeRejects = []struct {
	in          string
	unsupported bool
}{
	{"", false},
	{"<", false},
	{"<f", false},
	{"<f3", false},
	{"f5", false},
	{"<i16", false},
	{"<b2", false},
	{"?1", false},
	{"float", false},
	{"float63", false},
	{"<f-8", false},
	{"<fx", false},
	{"f8 ", false},
	{" f8", false},
	{"<U0", false},
	{"|S0", false},
	{"|V0", false},
	{"U-1", false},
	{"<U1073741824", false},
	{"S2147483648", false},
	{"<f8[D]", false},
	{"M8[]", false},
	{"M8[D]]", false},
	{"M8[0D]", false},
	{"M8[-1D]", false},
	{"M8[10]", false},
	{"M8[x]", false},
	{"M4", false},
	{"datetime64[", false},
	{"datetime64[xs]", false},
	{"<Q8", false},
	{"[('a', '<f8')]", false},
	{"|O", true},
	{"O", true},
	{"object", true},
}

func TestParseDType(t *testing.T) {
	for _, c := range dtypeCases {
		d, err := ParseDType(c.in)
		if err != nil {
			t.Errorf("ParseDType(%q): %v", c.in, err)
			continue
		}
		if d != c.want {
			t.Errorf("ParseDType(%q) = %+v, want %+v", c.in, d, c.want)
		}
		if got := d.String(); got != c.str {
			t.Errorf("ParseDType(%q).String() = %q, want %q", c.in, got, c.str)
		}
		if got := d.Name(); got != c.name {
			t.Errorf("ParseDType(%q).Name() = %q, want %q", c.in, got, c.name)
		}
		for _, s := range []string{d.String(), d.Name()} {
			if back, err := ParseDType(s); err != nil || back != d {
				t.Errorf("ParseDType(%q) = %+v, %v; want %+v (round trip of %q)", s, back, err, d, c.in)
			}
		}
	}
}

func TestParseDTypeRejects(t *testing.T) {
	for _, c := range dtypeRejects {
		d, err := ParseDType(c.in)
		if err == nil {
			t.Errorf("ParseDType(%q) = %+v, want an error", c.in, d)
			continue
		}
		if got := errors.Is(err, ErrUnsupported); got != c.unsupported {
			t.Errorf("ParseDType(%q): %v; errors.Is(ErrUnsupported) = %v, want %v", c.in, err, got, c.unsupported)
		}
		if !strings.Contains(err.Error(), "dtype") {
			t.Errorf("ParseDType(%q): error %q does not say what failed", c.in, err)
		}
	}
}

// TestParseDTypeNumpy checks String and Name against numpy's dtype.str and
// str(dtype) for every accepted spelling, and that numpy refuses or cannot
// represent what ParseDType rejects.
func TestParseDTypeNumpy(t *testing.T) {
	py := pyrun.Numpy1(t)
	var in []string
	for _, c := range dtypeCases {
		in = append(in, c.in)
	}
	for _, c := range dtypeRejects {
		in = append(in, c.in)
	}
	arg, _ := json.Marshal(in)
	script := `
import json, sys, warnings
warnings.simplefilter("ignore")
try:
    import numpy as np
except Exception as e:
    print(json.dumps({"error": "cannot import numpy: %s" % e})); sys.exit(0)
out = {}
for s in json.loads(sys.argv[1]):
    try:
        d = np.dtype(s)
        out[s] = {"str": d.str, "name": str(d), "itemsize": d.itemsize, "kind": d.kind}
    except Exception as e:
        out[s] = {"error": "%s: %s" % (type(e).__name__, e)}
print(json.dumps({"version": np.__version__, "dtypes": out}))
`
	cmd := py.Command("-c", script, string(arg))
	cmd.Env = append(cmd.Env, "PYTHONIOENCODING=utf-8")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", py, err)
	}
	var res struct {
		Error   string `json:"error"`
		Version string `json:"version"`
		DTypes  map[string]struct {
			Str      string `json:"str"`
			Name     string `json:"name"`
			ItemSize int    `json:"itemsize"`
			Kind     string `json:"kind"`
			Error    string `json:"error"`
		} `json:"dtypes"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("numpy output %q: %v", b, err)
	}
	if res.Error != "" {
		t.Skip(res.Error)
	}
	t.Logf("numpy %s", res.Version)
	for _, c := range dtypeCases {
		np := res.DTypes[c.in]
		if np.Error != "" {
			t.Errorf("numpy refuses %q (%s), ParseDType accepts it", c.in, np.Error)
			continue
		}
		d, err := ParseDType(c.in)
		if err != nil {
			continue // reported by TestParseDType
		}
		if d.String() != np.Str || d.Name() != np.Name || d.ItemSize != np.ItemSize || string(d.Kind) != np.Kind {
			t.Errorf("%q: String %q Name %q ItemSize %d Kind %c; numpy: str %q, str() %q, itemsize %d, kind %s",
				c.in, d.String(), d.Name(), d.ItemSize, d.Kind, np.Str, np.Name, np.ItemSize, np.Kind)
		}
	}
	for _, c := range dtypeRejects {
		np := res.DTypes[c.in]
		switch {
		case np.Error != "":
			// numpy refuses it too
		case np.ItemSize == 0 && np.Kind != "O":
			// a flexible type of unknown size ("<U0"): no array data
		case c.unsupported:
			if np.Kind != "O" {
				t.Errorf("%q is marked unsupported, numpy gives kind %s", c.in, np.Kind)
			}
		default:
			t.Logf("%q: numpy accepts it as %s (%s); ParseDType does not", c.in, np.Str, np.Name)
		}
	}
}
