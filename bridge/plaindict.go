package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"

	"mmpbridge/pyval"
)

// This file reads a plain pickle of a dict (what pickle.dump of a dict
// writes, not an mmappickle file) without running anything: the machine
// runs it as pickle.load would, in verify mode, and the dict's items come
// out as arrays and decoded values, ready to be stored in an mmappickle
// file (mmappickle converts such a file on its first writable open; the
// bridge does it without an unpickler).

// ErrNotPlainDict: the pickle is plain data but not a dict with str keys
// (or it holds something this package cannot store exactly as pickle.load
// gives it).
var ErrNotPlainDict = errors.New("not a plain pickled dict of str keys")

// PlainDict is a dict with str keys decoded from a plain pickle: the items
// in pickle.load's order.
type PlainDict struct {
	Keys []string
	// Values[i] is Keys[i]'s value: an *Array or a *Masked (reading the
	// bytes DecodePlainDict was given), or a value as File.Put takes it
	// (nil, bool, int64, *big.Int, float64, complex128, string, []byte,
	// pyval containers, Scalar, NDArray).
	Values []any
}

// DecodePlainDict decodes b, the whole of a plain pickle, as pickle.load
// would, running nothing. It succeeds only when pickle.load of b gives a
// dict (exactly dict) whose keys are str, built from plain data as Verify
// judges it, and every value can be stored so that it reads back as
// pickle.load gives it. Otherwise the error wraps ErrNotPlain (with the
// offset and what pickle.load would import or build there),
// ErrNotPlainDict or ErrLimit. The arrays returned read from b, which must
// not change while they are used.
func DecodePlainDict(b []byte, opts ...Option) (d *PlainDict, err error) {
	defer guard(&err, "plain pickle")()
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	src := newSource(bytesReaderAt(b), int64(len(b)))
	r := &Reader{src: src, cfg: cfg}
	v := newVerifier(r, nil)
	m := newMachine(src, cfg.limits)
	m.sink, m.trust, m.stream = v, v.trust, true
	m.reset(0)
	root, err := runPlainStream(m, src)
	if err != nil {
		return nil, err
	}
	if err := plainFindings(v); err != nil {
		return nil, err
	}
	if v.copy > src.size+amplificationSlack {
		return nil, &FormatError{Offset: 0, Msg: fmt.Sprintf("pickle.load copies %d bytes for a pickle of %d bytes (one object used many times through the memo)", v.copy, src.size), Err: ErrNotPlain}
	}
	return plainItems(m, src, root)
}

// runPlainStream runs the pickle from byte 0 to its STOP and returns what
// STOP returns.
func runPlainStream(m *machine, src *source) (ref, error) {
	sc := src.scanner(0, src.size)
	var o op
	for !sc.done() {
		if err := sc.nextInto(&o); err != nil {
			return 0, notPlain(err)
		}
		switch o.Code {
		case opStop:
			if len(m.marks) != 0 || len(m.stack) != m.base+1 {
				return 0, &FormatError{Offset: o.Off, Msg: fmt.Sprintf("STOP leaves %d items and %d marks on the stack, not one item", len(m.stack)-m.base, len(m.marks)), Err: ErrNotPlain}
			}
			return m.stack[len(m.stack)-1], nil
		case opProto:
			if o.Int > 5 {
				return 0, &FormatError{Offset: o.Off, Msg: fmt.Sprintf("unsupported pickle protocol: %d", o.Int), Err: ErrNotPlain}
			}
		}
		if m.ops++; m.ops > m.lim.MaxOps {
			return 0, limitErr(o.Off, "pickle has more than %d opcodes", m.lim.MaxOps)
		}
		if err := m.step(o); err != nil {
			return 0, notPlain(err)
		}
	}
	return 0, &FormatError{Offset: src.size, Msg: "the pickle ends before its STOP (pickle.load raises EOFError)", Err: ErrNotPlain}
}

// notPlain makes a machine's refusal an ErrNotPlain (limits and I/O
// errors stay what they are).
func notPlain(err error) error {
	var fe *FormatError
	if !errors.As(err, &fe) || errors.Is(err, ErrLimit) {
		return err
	}
	c := *fe
	c.Err = ErrNotPlain
	return &c
}

// plainFindings is the first of what the verifier found that makes the
// pickle not plain data, as an error wrapping ErrNotPlain.
func plainFindings(v *verifier) error {
	for _, s := range v.rep.Structure {
		return &FormatError{Offset: s.Offset, Msg: s.Msg, Err: ErrNotPlain}
	}
	for _, f := range v.rep.Findings {
		switch {
		case f.Kind == Import && !f.Allowed:
			return &FormatError{Offset: f.Offset, Msg: fmt.Sprintf("pickle.load imports %s.%s, a global outside the allow-list", f.Module, f.Name), Err: ErrNotPlain}
		case f.Kind == NotPlain || f.Kind == Fails || f.Kind == SharedMemo:
			return &FormatError{Offset: f.Offset, Msg: f.Msg, Err: ErrNotPlain}
		}
	}
	return nil
}

func notDict(off int64, format string, args ...any) error {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...), Err: ErrNotPlainDict}
}

// plainItems converts the dict at root into a PlainDict.
func plainItems(m *machine, src *source, root ref) (*PlainDict, error) {
	nd := m.at(root)
	if nd.kind != kDict {
		return nil, notDict(nd.off, "a pickle of a %s, not of a dict", nd.kind)
	}
	if nd.flags&fNoDedup != 0 {
		return nil, notDict(nd.off, "the dict has keys whose equality is not modelled")
	}
	c := &toGo{m: m, done: map[ref]converted{}, busy: map[ref]bool{}, src: src}
	sh := &sharing{m: m, seen: map[ref]int{}, mut: map[ref]bool{}, budget: max(m.lim.MaxOps, 1<<20)}
	n := len(nd.items) / 2
	d := &PlainDict{Keys: make([]string, 0, n), Values: make([]any, 0, n)}
	// What storing the dict writes is bounded as what decoding builds: an
	// array used by many keys is stored once for each.
	st := &storer{left: src.size + m.lim.MaxValueBytes}
	for i := range n {
		kr, vr := nd.items[2*i], nd.items[2*i+1]
		k, ok := m.str(kr)
		if !ok {
			return nil, notDict(m.at(kr).off, "a key is a %s, not a str", m.at(kr).kind)
		}
		if !validKey([]byte(k)) {
			return nil, notDict(m.at(kr).off, "key %q is not 1-255 bytes of UTF-8", k)
		}
		if err := sh.item(vr, i+1); err != nil {
			return nil, withKey(err, k)
		}
		gv, err := c.value(vr, 1)
		if err != nil {
			return nil, withKey(notPlain(err), k)
		}
		val, err := st.storable(gv, m.at(vr).off, true)
		if err != nil {
			return nil, withKey(err, k)
		}
		d.Keys = append(d.Keys, k)
		d.Values = append(d.Values, val)
	}
	return d, nil
}

// sharing refuses a value in which one mutable object (a list, dict, set,
// bytearray or array, or a tuple holding one) is reached twice: pickle.load
// makes one object of it, and storing the value would make two.
type sharing struct {
	m      *machine
	seen   map[ref]int  // node -> the item it was last reached in
	mut    map[ref]bool // node -> it is, or holds, a mutable object
	budget int64
}

func mutableKind(k kind) bool {
	switch k {
	case kList, kDict, kODict, kSet, kByteArray, kArray, kMasked, kFromString:
		return true
	}
	return false
}

// mutable tells whether r is or holds a mutable object.
func (s *sharing) mutable(r ref) bool {
	if v, ok := s.mut[r]; ok {
		return v
	}
	s.mut[r] = false // a cycle is refused elsewhere
	nd := s.m.at(r)
	v := mutableKind(nd.kind)
	for _, it := range nd.items {
		if s.mutable(it) {
			v = true
		}
	}
	s.mut[r] = v
	return v
}

// item walks the value r of item i (from 1).
func (s *sharing) item(r ref, i int) error {
	if !s.mutable(r) {
		return nil
	}
	if s.seen[r] == i {
		return &FormatError{Offset: s.m.at(r).off, Msg: fmt.Sprintf("one %s is used twice in the value: pickle.load makes one object of it, a stored copy would make two", s.m.at(r).kind), Err: ErrNotPlainDict}
	}
	if s.budget--; s.budget < 0 {
		return limitErr(s.m.at(r).off, "shared parts of the dict are walked more than the opcode limit allows")
	}
	s.seen[r] = i
	for _, it := range s.m.at(r).items {
		if err := s.item(it, i); err != nil {
			return err
		}
	}
	return nil
}

// storer converts decoded values into what File.Put stores, counting the
// array bytes that storing them writes.
type storer struct {
	left int64 // array bytes still allowed
}

// spend counts n bytes of arrays stored.
func (st *storer) spend(off, n int64) error {
	if st.left -= n; st.left < 0 {
		return limitErr(off, "the dict's arrays add up to more bytes than the file and the decode limit allow once each use is stored (one array used by many keys)")
	}
	return nil
}

// storable returns v as File.Put stores it so that it reads back as
// pickle.load gives it, or an error naming what cannot be. top: v is the
// item's value itself (arrays and masked arrays are stored as such).
func (st *storer) storable(v any, off int64, top bool) (any, error) {
	switch v := v.(type) {
	case nil, bool, int64, float64, complex128, string, []byte, pyval.ByteArray, Scalar:
		return v, nil
	case *big.Int:
		return v, nil
	case *Array:
		if err := st.spend(off, v.NBytes); err != nil {
			return nil, err
		}
		if top {
			return v, nil
		}
		if v.src == nil || v.src.data == nil || v.Offset < 0 || v.NBytes < 0 || v.NBytes > int64(len(v.src.data))-v.Offset {
			return nil, notDict(off, "an array nested in a value cannot be read")
		}
		return NDArray{DType: v.DType, Shape: v.Shape, Fortran: v.Fortran, Data: bytes.Clone(v.Bytes())}, nil
	case *Masked:
		if !top {
			return nil, notDict(off, "a masked array nested in a value cannot be stored as pickle.load gives it")
		}
		if v.Fill != nil {
			f, ok := v.Fill.(*Array)
			if !ok || f.NBytes != int64(f.DType.ItemSize) || f.DType != v.Data.DType {
				return nil, notDict(off, "the masked array's fill value cannot be stored as pickle.load gives it")
			}
		}
		if err := st.spend(off, v.Data.NBytes+v.Mask.NBytes); err != nil {
			return nil, err
		}
		return v, nil
	case pyval.Tuple:
		out, err := st.slice(v, off)
		return pyval.Tuple(out), err
	case []any:
		return st.slice(v, off)
	case pyval.Set:
		out, err := st.slice(v, off)
		return pyval.Set(out), err
	case pyval.FrozenSet:
		out, err := st.slice(v, off)
		return pyval.FrozenSet(out), err
	case pyval.Dict:
		out, err := st.items(v, off)
		return pyval.Dict(out), err
	case pyval.OrderedDict:
		out, err := st.items(v, off)
		return pyval.OrderedDict(out), err
	case pyval.Object:
		return nil, notDict(off, "%s.%s cannot be stored as pickle.load gives it: %s", v.Module, v.Name, v.Why)
	case DType:
		return nil, notDict(off, "a numpy.dtype object cannot be stored as pickle.load gives it")
	}
	return nil, notDict(off, "a %T cannot be stored as pickle.load gives it", v)
}

func (st *storer) slice(v []any, off int64) ([]any, error) {
	out := make([]any, len(v))
	for i, x := range v {
		s, err := st.storable(x, off, false)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func (st *storer) items(v []pyval.DictItem, off int64) ([]pyval.DictItem, error) {
	out := make([]pyval.DictItem, len(v))
	for i, it := range v {
		k, err := st.storable(it.Key, off, false)
		if err != nil {
			return nil, err
		}
		x, err := st.storable(it.Value, off, false)
		if err != nil {
			return nil, err
		}
		out[i] = pyval.DictItem{Key: k, Value: x}
	}
	return out, nil
}

// PutPlainDict stores every item of d in mf, in d's order (an existing key
// is replaced). It stops at the first error; to get all the items or none,
// write into a new file that becomes the real one only once complete.
func (mf *File) PutPlainDict(d *PlainDict) error {
	for i, k := range d.Keys {
		if err := mf.Put(k, d.Values[i]); err != nil {
			return err
		}
	}
	return nil
}
