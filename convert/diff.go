package convert

import (
	"context"
	"fmt"
	"io"
	"os"

	"mmpbridge/pyval"
	"mmpbridge/remote"

	"mmpbridge/bridge"
)

// attrsKey is the key holding the attributes of every object of an HDF5
// file once converted (the HDF5 converters write and read it; diff compares
// it as attributes, built with or without HDF5).
const attrsKey = "__attrs__"

// DiffOptions control a comparison.
type DiffOptions struct {
	// StrictDType makes byte order part of a dtype: by default '<f8' and
	// '>f8' are one dtype and their values are compared by value.
	StrictDType bool
	// RTol and ATol compare numeric elements (integers, floats, complex)
	// as numpy.isclose does: |a - b| <= ATol + RTol*|b|, NaN equal to NaN.
	// Both zero (the default): elements must be identical bit for bit.
	RTol, ATol float64
	// Report is called with every difference found.
	Report func(Difference)
	// Progress, if set, is called as array bytes are compared (and as
	// inputs are read into scratch files).
	Progress func(done, total int64)
	// ScratchDir is where inputs that are not mmappickle files are read
	// into (default os.TempDir()).
	ScratchDir string
	// Layout compares the HDF5 storage records of __attrs__ too (chunks and
	// filters, "__layout__"): by default they are how data is stored, not
	// what it holds, and a file without attributes left has none.
	Layout bool
}

// validate checks the options where they are made.
func (o *DiffOptions) validate() error {
	if !(o.RTol >= 0) || !(o.ATol >= 0) {
		return &UsageError{Msg: fmt.Sprintf("tolerances must be non-negative numbers (rtol %v, atol %v)", o.RTol, o.ATol)}
	}
	return nil
}

// DiffKind says how two files differ at one key.
type DiffKind int

const (
	OnlyInA     DiffKind = iota // the key is in A, not in B
	OnlyInB                     // the key is in B, not in A
	KindDiffers                 // an array in one, a masked array or a generic value in the other
	DTypeDiffers
	ShapeDiffers
	ValuesDiffer // array elements (of a masked array's data too)
	MaskDiffers  // mask elements of a masked array
	FillDiffers  // fill values of masked arrays
	ValueDiffers // generic values, at Path
)

// Difference is one way two files differ.
type Difference struct {
	Key  string
	Kind DiffKind
	// KindDiffers: what each side holds.
	AKind, BKind bridge.Kind
	// DTypeDiffers.
	ADType, BDType bridge.DType
	// ShapeDiffers.
	AShape, BShape []int
	// ValuesDiffer and MaskDiffers: Count of Total elements differ, the
	// first found (in the order of the bytes: C, or Fortran when both are) at
	// Index, where A and B hold AElem and BElem.
	Count, Total int64
	Index        []int
	AElem, BElem bridge.Scalar
	// FillDiffers and ValueDiffers: the two values (Missing where a dict
	// has no such key), and, for ValueDiffers, the path to them inside the
	// key's value: dict keys and list/tuple indexes (as int).
	A, B any
	Path []any
}

// Missing stands for a dict key one side of a ValueDiffers does not have.
type missing struct{}

// Missing is the value of Difference.A or B where a dict lacks the key.
var Missing any = missing{}

// Diff compares two files of any supported formats logically, as the
// conversions see them: the same keys (npz members without ".npy", HDF5
// dataset paths without the leading "/", the attributes of an HDF5 file
// under "__attrs__"), and for each the same kind, dtype, shape, values
// (element by element in index order, whatever the memory order), masks
// and fill values of masked arrays, and generic values.
//
// Inputs other than mmappickle files are first read as a conversion to
// mmappickle would read them, into an unnamed scratch file in
// DiffOptions.ScratchDir: they are seen exactly as `convert` sees them,
// in constant memory, at the cost of disk space for their arrays.
// mmappickle files (and URLs of them) are compared in place, through their
// mappings, block by block on all cores.
//
// Diff calls opt.Report for each difference, in key order of a, then the
// keys only b has, then the HDF5 attributes (__attrs__, compared dict by
// dict), and returns the number of differences. An error means
// the comparison could not be made (an unreadable input, an item a
// conversion would refuse).
//
// fa and fb may be empty to guess the formats from the extensions.
func Diff(ctx context.Context, a, b string, fa, fb Format, opt DiffOptions) (n int, err error) {
	if err := opt.validate(); err != nil {
		return 0, err
	}
	if fa == "" {
		if fa, err = FormatOf(a); err != nil {
			return 0, err
		}
	}
	if fb == "" {
		if fb, err = FormatOf(b); err != nil {
			return 0, err
		}
	}
	p := &progress{ctx: ctx, fn: opt.Progress}
	// A .npy holds one array and no key: it is compared with the other
	// side's one key whatever that is called (its stem otherwise). So the
	// other side is opened first.
	var ra, rb *bridge.Reader
	var ca, cb io.Closer
	if fa == Npy && fb != Npy {
		if rb, cb, err = openLogical(ctx, b, fb, opt.ScratchDir, "", p); err != nil {
			return 0, err
		}
		defer cb.Close()
		if ra, ca, err = openLogical(ctx, a, fa, opt.ScratchDir, soleKey(rb), p); err != nil {
			return 0, err
		}
		defer ca.Close()
	} else {
		if ra, ca, err = openLogical(ctx, a, fa, opt.ScratchDir, "", p); err != nil {
			return 0, err
		}
		defer ca.Close()
		if rb, cb, err = openLogical(ctx, b, fb, opt.ScratchDir, soleKey(ra), p); err != nil {
			return 0, err
		}
		defer cb.Close()
	}
	d := &differ{ctx: ctx, opt: &opt, a: ra, b: rb, an: a, bn: b, p: p}
	p.done.Store(0)
	p.total.Store(0)
	return d.run()
}

// openLogical opens name as an mmappickle Reader: in place for mmappickle
// files, else read by the format's converter into a scratch file (a .npy's
// array under key, when not "").
func openLogical(ctx context.Context, name string, f Format, dir, key string, p *progress) (*bridge.Reader, io.Closer, error) {
	if f == Mmpkl {
		return bridge.OpenReader(ctx, name)
	}
	read, ok := toMmpkl[f]
	if !ok {
		return nil, nil, &UsageError{Msg: fmt.Sprintf("%s: this build cannot read %s files", name, f)}
	}
	if remote.IsURL(name) {
		return nil, nil, &UsageError{Msg: fmt.Sprintf("%s: only mmappickle files are read over HTTP", name)}
	}
	if dir == "" {
		dir = os.TempDir()
	}
	opt := Options{scratchDir: dir}
	if f == Npy {
		opt.Key = key
	}
	r, c, _, err := readScratch(ctx, name, read, opt, p)
	return r, c, err
}

// soleKey is the key of a file of one key, else "".
func soleKey(r *bridge.Reader) string {
	if ks := r.Keys(); len(ks) == 1 {
		return ks[0]
	}
	return ""
}

// differ is one comparison.
type differ struct {
	ctx    context.Context
	opt    *DiffOptions
	a, b   *bridge.Reader
	an, bn string
	p      *progress
	n      int
}

func (d *differ) report(x Difference) {
	d.n++
	if d.opt.Report != nil {
		d.opt.Report(x)
	}
}

func (d *differ) run() (int, error) {
	ka, kb := d.withoutAttrs(d.a.Keys()), d.withoutAttrs(d.b.Keys())
	inB := make(map[string]bool, len(kb))
	for _, k := range kb {
		inB[k] = true
	}
	inA := make(map[string]bool, len(ka))
	var both []string
	for _, k := range ka {
		inA[k] = true
		if inB[k] {
			both = append(both, k)
		}
	}
	// The progress total: the array bytes of the keys both have.
	for _, k := range both {
		if kind, err := d.a.KindOf(k); err == nil && kind != bridge.KindValue {
			if v, err := d.a.Get(k); err == nil {
				d.p.total.Add(arrayBytes(v))
			}
		}
	}
	for _, k := range ka {
		if err := d.ctx.Err(); err != nil {
			return d.n, err
		}
		if !inB[k] {
			d.report(Difference{Key: k, Kind: OnlyInA})
			continue
		}
		if err := d.key(k); err != nil {
			return d.n, err
		}
	}
	for _, k := range kb {
		if !inA[k] {
			d.report(Difference{Key: k, Kind: OnlyInB})
		}
	}
	if err := d.attrs(); err != nil {
		return d.n, err
	}
	return d.n, nil
}

// withoutAttrs is keys without attrsKey, compared apart (attrs).
func (d *differ) withoutAttrs(keys []string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if k != attrsKey {
			out = append(out, k)
		}
	}
	return out
}

// attrs compares the files' __attrs__ (the HDF5 attributes), storage
// records left out unless opt.Layout: a side whose attributes are only
// such records has none.
func (d *differ) attrs() error {
	get := func(r *bridge.Reader, name string) (any, error) {
		if _, err := r.Entry(attrsKey); err != nil {
			return nil, nil
		}
		v, err := r.Get(attrsKey)
		if err != nil {
			return nil, wrapFile(name, err)
		}
		if !d.opt.Layout {
			v = withoutLayoutRecords(v)
		}
		return v, nil
	}
	va, err := get(d.a, d.an)
	if err != nil {
		return err
	}
	vb, err := get(d.b, d.bn)
	if err != nil {
		return err
	}
	switch {
	case va == nil && vb == nil:
		return nil
	case vb == nil:
		d.report(Difference{Key: attrsKey, Kind: OnlyInA})
		return nil
	case va == nil:
		d.report(Difference{Key: attrsKey, Kind: OnlyInB})
		return nil
	}
	if kindOfValue(va) != bridge.KindValue || kindOfValue(vb) != bridge.KindValue {
		return d.key(attrsKey)
	}
	return d.values(attrsKey, nil, va, vb)
}

// key compares one key both files have.
func (d *differ) key(k string) error {
	va, err := d.a.Get(k)
	if err != nil {
		return wrapFile(d.an, err)
	}
	vb, err := d.b.Get(k)
	if err != nil {
		return wrapFile(d.bn, err)
	}
	ka, kb := kindOfValue(va), kindOfValue(vb)
	if ka != kb {
		d.report(Difference{Key: k, Kind: KindDiffers, AKind: ka, BKind: kb})
		return nil
	}
	switch x := va.(type) {
	case *bridge.Array:
		return d.arrays(k, x, vb.(*bridge.Array), ValuesDiffer)
	case *bridge.Masked:
		y := vb.(*bridge.Masked)
		if !d.headersMatch(k, x.Data, y.Data) {
			return nil
		}
		if err := d.arrays(k, x.Data, y.Data, ValuesDiffer); err != nil {
			return err
		}
		if err := d.arrays(k, x.Mask, y.Mask, MaskDiffers); err != nil {
			return err
		}
		eq, err := d.valuesEqual(x.Fill, y.Fill)
		if err != nil {
			return fmt.Errorf("key %q: fill value: %w", k, err)
		}
		if !eq {
			d.report(Difference{Key: k, Kind: FillDiffers, A: x.Fill, B: y.Fill})
		}
		return nil
	}
	return d.values(k, nil, va, vb)
}

func kindOfValue(v any) bridge.Kind {
	switch v.(type) {
	case *bridge.Array:
		return bridge.KindArray
	case *bridge.Masked:
		return bridge.KindMasked
	}
	return bridge.KindValue
}

// headersMatch compares dtypes and shapes, reporting a difference.
func (d *differ) headersMatch(k string, a, b *bridge.Array) bool {
	if !d.dtypesMatch(a.DType, b.DType) {
		d.report(Difference{Key: k, Kind: DTypeDiffers, ADType: a.DType, BDType: b.DType})
		return false
	}
	if !equalInts(a.Shape, b.Shape) {
		d.report(Difference{Key: k, Kind: ShapeDiffers, AShape: a.Shape, BShape: b.Shape})
		return false
	}
	return true
}

func (d *differ) dtypesMatch(a, b bridge.DType) bool {
	if d.opt.StrictDType {
		return a == b
	}
	a.ByteOrder, b.ByteOrder = 0, 0
	return a == b
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// arrays compares two arrays' headers and elements.
func (d *differ) arrays(k string, a, b *bridge.Array, kind DiffKind) error {
	if kind == ValuesDiffer && !d.headersMatch(k, a, b) {
		return nil
	}
	if kind == MaskDiffers && !equalInts(a.Shape, b.Shape) {
		// Masks follow their data's shape; a file cannot hold another.
		return fmt.Errorf("key %q: the mask's shape differs from the data's", k)
	}
	res, err := compareArrays(d.ctx, a, b, d.tolerance(a.DType), d.p)
	if err != nil {
		return fmt.Errorf("key %q: %w", k, err)
	}
	if res.count > 0 {
		d.report(Difference{Key: k, Kind: kind, Count: res.count, Total: a.Size(),
			Index: res.index, AElem: res.a, BElem: res.b})
	}
	return nil
}

// values compares generic values, reporting each difference with its path.
func (d *differ) values(k string, path []any, a, b any) error {
	da, aok := dictItems(a)
	db, bok := dictItems(b)
	if aok && bok && sameContainer(a, b) {
		ia, ib := dictKeyIndex(da), dictKeyIndex(db)
		for _, it := range da {
			j := ib.find(it.Key)
			p := appendPath(path, it.Key)
			if j < 0 {
				d.report(Difference{Key: k, Kind: ValueDiffers, Path: p, A: it.Value, B: Missing})
				continue
			}
			if err := d.values(k, p, it.Value, db[j].Value); err != nil {
				return err
			}
		}
		for _, it := range db {
			if ia.find(it.Key) < 0 {
				d.report(Difference{Key: k, Kind: ValueDiffers, Path: appendPath(path, it.Key), A: Missing, B: it.Value})
			}
		}
		return nil
	}
	la, aok := seqItems(a)
	lb, bok := seqItems(b)
	if aok && bok && sameContainer(a, b) && len(la) == len(lb) {
		for i := range la {
			if err := d.values(k, appendPath(path, i), la[i], lb[i]); err != nil {
				return err
			}
		}
		return nil
	}
	eq, err := d.valuesEqual(a, b)
	if err != nil {
		return fmt.Errorf("key %q: %w", k, err)
	}
	if !eq {
		d.report(Difference{Key: k, Kind: ValueDiffers, Path: path, A: a, B: b})
	}
	return nil
}

func appendPath(path []any, k any) []any {
	return append(path[:len(path):len(path)], k)
}

func dictItems(v any) ([]pyval.DictItem, bool) {
	switch v := v.(type) {
	case pyval.Dict:
		return v, true
	case pyval.OrderedDict:
		return v, true
	}
	return nil, false
}

func seqItems(v any) ([]any, bool) {
	switch v := v.(type) {
	case []any:
		return v, true
	case pyval.Tuple:
		return v, true
	}
	return nil, false
}

// sameContainer: both values are the same Go type (a dict is not an
// OrderedDict, a list not a tuple).
func sameContainer(a, b any) bool {
	return fmt.Sprintf("%T", a) == fmt.Sprintf("%T", b)
}

// keyIndex finds the items of a dict, or the elements of a set, by value
// equality as the diff sees it. Keys of the common kinds (str, int, bool,
// None) are found through a map, so that matching two dicts of n keys costs
// n, not n*n (a file's dict may hold millions); the others are compared one
// by one (they are hashable values: no arrays, so no error can arise).
type keyIndex struct {
	keys []any
	fast map[fastKey]int
	rest []int   // the places of the other keys
	d    *differ // how numpy scalars compare (nil: exactly)
}

// fastKey is a key of a common kind; deepEqual of two such keys is the
// equality of their fastKeys.
type fastKey struct {
	kind byte
	s    string
	i    int64
}

func fastKeyOf(k any) (fastKey, bool) {
	switch k := k.(type) {
	case string:
		return fastKey{kind: 's', s: k}, true
	case int64:
		return fastKey{kind: 'i', i: k}, true
	case bool:
		if k {
			return fastKey{kind: 'T'}, true
		}
		return fastKey{kind: 'F'}, true
	case nil:
		return fastKey{kind: 'n'}, true
	}
	return fastKey{}, false
}

func newKeyIndex(keys []any, d *differ) *keyIndex {
	x := &keyIndex{keys: keys, fast: make(map[fastKey]int, len(keys)), d: d}
	for i, k := range keys {
		if f, ok := fastKeyOf(k); ok {
			if _, dup := x.fast[f]; !dup {
				x.fast[f] = i
			}
			continue
		}
		x.rest = append(x.rest, i)
	}
	return x
}

func dictKeyIndex(items []pyval.DictItem) *keyIndex {
	keys := make([]any, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	return newKeyIndex(keys, nil)
}

// find returns the place of a key equal to k, or -1.
func (x *keyIndex) find(k any) int {
	if f, ok := fastKeyOf(k); ok {
		if i, ok := x.fast[f]; ok {
			return i
		}
		return -1
	}
	for _, i := range x.rest {
		if eq, _ := valuesEqual(context.Background(), x.keys[i], k, x.d); eq {
			return i
		}
	}
	return -1
}

// valuesEqual compares two generic values exactly (arrays inside them by
// content; numpy scalars by dtype and bytes; NaN equal to NaN).
func (d *differ) valuesEqual(a, b any) (bool, error) {
	return valuesEqual(d.ctx, a, b, d)
}

func valuesEqual(ctx context.Context, a, b any, d *differ) (bool, error) {
	switch x := a.(type) {
	case nil:
		return b == nil, nil
	case float64:
		y, ok := b.(float64)
		return ok && (x == y && (x != 0 || signbit(x) == signbit(y)) || x != x && y != y), nil
	case complex128:
		y, ok := b.(complex128)
		if !ok {
			return false, nil
		}
		eq, _ := valuesEqual(ctx, real(x), real(y), d)
		eq2, _ := valuesEqual(ctx, imag(x), imag(y), d)
		return eq && eq2, nil
	case *bridge.Scalar:
		y, ok := b.(*bridge.Scalar)
		if !ok {
			return false, nil
		}
		if d != nil && !d.dtypesMatch(x.DType, y.DType) || d == nil && x.DType != y.DType {
			return false, nil
		}
		return string(x.Raw) == string(normalizeOrder(y.Raw, y.DType, x.DType.ByteOrder)), nil
	case *bridge.Array:
		y, ok := b.(*bridge.Array)
		if !ok {
			return false, nil
		}
		if !equalInts(x.Shape, y.Shape) || (d != nil && !d.dtypesMatch(x.DType, y.DType)) || (d == nil && x.DType != y.DType) {
			return false, nil
		}
		res, err := compareArrays(ctx, x, y, tolerance{}, nil)
		return err == nil && res.count == 0, err
	case *bridge.Masked:
		y, ok := b.(*bridge.Masked)
		if !ok {
			return false, nil
		}
		for _, pair := range [][2]any{{x.Data, y.Data}, {x.Mask, y.Mask}, {x.Fill, y.Fill}} {
			if eq, err := valuesEqual(ctx, pair[0], pair[1], d); !eq || err != nil {
				return eq, err
			}
		}
		return true, nil
	case pyval.Set, pyval.FrozenSet:
		// Sets are equal whatever their order.
		xs, ys := setItems(a), setItems(b)
		if ys == nil || !sameContainer(a, b) || len(xs) != len(ys) {
			return false, nil
		}
		iy := newKeyIndex(ys, d)
		for _, e := range xs {
			if iy.find(e) < 0 {
				return false, nil
			}
		}
		return true, nil
	}
	if da, ok := dictItems(a); ok {
		db, ok := dictItems(b)
		if !ok || !sameContainer(a, b) || len(da) != len(db) {
			return false, nil
		}
		ib := dictKeyIndex(db)
		for _, it := range da {
			j := ib.find(it.Key)
			if j < 0 {
				return false, nil
			}
			if eq, err := valuesEqual(ctx, it.Value, db[j].Value, d); !eq || err != nil {
				return eq, err
			}
		}
		return true, nil
	}
	if la, ok := seqItems(a); ok {
		lb, ok := seqItems(b)
		if !ok || !sameContainer(a, b) || len(la) != len(lb) {
			return false, nil
		}
		for i := range la {
			if eq, err := valuesEqual(ctx, la[i], lb[i], d); !eq || err != nil {
				return eq, err
			}
		}
		return true, nil
	}
	return deepEqual(a, b), nil
}

func setItems(v any) []any {
	switch v := v.(type) {
	case pyval.Set:
		return v
	case pyval.FrozenSet:
		return v
	}
	return nil
}
