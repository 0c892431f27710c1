package bridge

import (
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
)

// This file gives dicts and sets Python's key equality: 1, 1.0, True and
// numpy.int64(1) are one key (the first kept, the last value wins), a NaN
// equals only itself (the same object, reached through the memo), tuples
// and frozensets compare by content. Each hashable object gets a canonical
// key string; objects whose equality is not modelled here (numpy datetimes
// and voids, ranges, dtypes, undecoded objects) make their container
// "undecodable" rather than guessed.

// maxShortKey is the longest canonical key used as it is; a longer one
// (a long str or bytes, a big int, a big tuple) stands for itself through a
// short token, the same for equal keys.
const maxShortKey = 64

// hashKey returns r's canonical key. hashable is false when Python cannot
// hash r (a list, a dict, an array: CPython raises); modelled is false when
// r is hashable but its equality is not modelled.
//
// Every node is keyed once: its result (its key, a short token standing
// for a long key, or "not modelled") is remembered for the node, so an
// object shared through the memo costs its size once however many times it
// is used as a key, as CPython caches a str's or a tuple's hash. Short keys
// of other kinds than tuples, frozensets and numpy scalars are made again
// at each use, in constant time. Each remembered key counts against
// MaxValueBytes.
func (m *machine) hashKey(r ref, depth int) (key string, hashable, modelled bool, err error) {
	if depth > m.lim.MaxDepth {
		return "", false, false, limitErr(m.at(r).off, "keys nested deeper than %d", m.lim.MaxDepth)
	}
	if k, ok := m.keys[r]; ok {
		if k == keyNotModelled {
			return "", true, false, nil
		}
		return k, true, true, nil
	}
	k, hashable, modelled, err := m.keyOf(r, depth)
	if err != nil || !hashable {
		// Unhashable: the dict or set operation fails, once.
		return "", hashable, modelled, err
	}
	nd := m.at(r)
	if !modelled {
		k = keyNotModelled
	} else if len(k) <= maxShortKey {
		switch nd.kind {
		case kTuple, kFrozenSet, kScalar:
			// Keyed from their items, or from an item of any size
			// (a numpy scalar's bytes): remembered.
		default:
			return k, true, true, nil // short: keyed again in constant time
		}
	} else {
		tok, ok := m.longKeys[k]
		if !ok {
			if err := m.grow(nd.off, int64(len(k))); err != nil {
				return "", false, false, err
			}
			if m.longKeys == nil {
				m.longKeys = map[string]string{}
			}
			tok = "L" + strconv.Itoa(len(m.longKeys))
			m.longKeys[k] = tok
		}
		k = tok
	}
	if err := m.grow(nd.off, int64(len(k))); err != nil {
		return "", false, false, err
	}
	if m.keys == nil {
		m.keys = map[ref]string{}
	}
	m.keys[r] = k
	if k == keyNotModelled {
		return "", true, false, nil
	}
	return k, true, true, nil
}

// keyNotModelled is remembered for a node whose equality is not modelled
// (no canonical key starts with '?').
const keyNotModelled = "?"

// keyWork counts the work of keyOf, process-wide: one per node keyed, plus
// the bytes or items it reads. Tests bound hashing work with it
// (TestKeysHashedOnce); it is never reset.
var keyWork atomic.Int64

// keyOf computes r's canonical key (see hashKey).
func (m *machine) keyOf(r ref, depth int) (key string, hashable, modelled bool, err error) {
	nd := m.at(r)
	work := int64(1) + int64(len(nd.items))
	if sc, ok := nd.x.(*Scalar); ok {
		work += int64(len(sc.Raw))
	}
	defer func() { keyWork.Add(work + int64(len(key))) }()
	switch nd.kind {
	case kNone:
		return "N", true, true, nil
	case kBool:
		return intKey(nd.i), true, true, nil
	case kInt:
		v, _ := m.intOf(r)
		if v.big != nil {
			return "n" + v.big.Text(16), true, true, nil
		}
		return intKey(v.small), true, true, nil
	case kFloat:
		return floatKey(m.floatOf(r), r), true, true, nil
	case kComplex:
		return complexKey(nd.x.(complex128), r), true, true, nil
	case kStr:
		s, _ := m.str(r)
		return "s" + s, true, true, nil
	case kBytes:
		b, _ := m.bytesOf(r)
		return "b" + string(b), true, true, nil
	case kScalar:
		sc := nd.x.(*Scalar)
		if sc.DType.Kind == 'V' {
			return "", false, false, nil // numpy: unhashable type: 'writeable void-scalar'
		}
		k, ok := scalarKey(sc, r)
		return k, true, ok, nil
	case kGlobal:
		n := nd.x.([2]string)
		return "G" + n[0] + "\x00" + n[1], true, true, nil
	case kTuple, kFrozenSet:
		if nd.flags&fNoDedup != 0 {
			return "", true, false, nil
		}
		parts := make([]string, len(nd.items))
		all := true
		for i, it := range nd.items {
			k, h, mod, err := m.hashKey(it, depth+1)
			if err != nil || !h {
				return "", h, false, err
			}
			all = all && mod
			parts[i] = k
		}
		if !all {
			return "", true, false, nil
		}
		prefix := "t"
		if nd.kind == kFrozenSet {
			prefix = "F"
			sort.Strings(parts)
		}
		var b strings.Builder
		b.WriteString(prefix)
		for _, p := range parts {
			b.WriteString(strconv.Itoa(len(p)))
			b.WriteByte(':')
			b.WriteString(p)
		}
		return b.String(), true, true, nil
	case kRange, kDType, kDTypeNew, kOpaque:
		return "", true, false, nil
	}
	// list, dict, OrderedDict, set, bytearray, slice (before Python 3.12),
	// arrays: unhashable.
	return "", false, false, nil
}

func intKey(v int64) string {
	if v >= -5 && v <= 256 {
		return smallIntKeys[v+5]
	}
	return "n" + strconv.FormatInt(v, 16)
}

// smallIntKeys are the keys of the ints CPython caches, made once: they
// are most keys, and set() of a shared list keys them at each call.
var smallIntKeys = func() (k [262]string) {
	for i := range k {
		k[i] = "n" + strconv.FormatInt(int64(i-5), 16)
	}
	return k
}()

// floatKey: an integral float is the int of its value, a NaN only itself.
func floatKey(f float64, r ref) string {
	switch {
	case math.IsNaN(f):
		return "nan#" + strconv.Itoa(int(r))
	case math.IsInf(f, 1):
		return "i+"
	case math.IsInf(f, -1):
		return "i-"
	case f == math.Trunc(f):
		if math.Abs(f) < 1<<62 {
			return intKey(int64(f))
		}
		b, _ := new(big.Float).SetFloat64(f).Int(nil)
		return "n" + b.Text(16)
	}
	return "f" + strconv.FormatUint(math.Float64bits(f), 16)
}

func complexKey(c complex128, r ref) string {
	re, im := real(c), imag(c)
	switch {
	case math.IsNaN(re) || math.IsNaN(im):
		return "nan#" + strconv.Itoa(int(r))
	case im == 0:
		return floatKey(re, r)
	}
	return "c" + floatKey(re, r) + "," + floatKey(im, r)
}

// scalarKey: numpy scalars of numeric kinds compare as the Python numbers
// of their values, str_ and bytes_ as str and bytes (numpy drops trailing
// NULs); others (datetimes, voids, long doubles) are not modelled.
func scalarKey(s *Scalar, r ref) (string, bool) {
	v := s.Value()
	switch v := v.(type) {
	case bool:
		return intKey(b2i(v)), true
	case int64:
		return intKey(v), true
	case uint64:
		if v > math.MaxInt64 {
			return "n" + new(big.Int).SetUint64(v).Text(16), true
		}
		return intKey(int64(v)), true
	case float64:
		if s.DType.Kind == 'f' {
			return floatKey(v, r), true
		}
	case complex128:
		if s.DType.Kind == 'c' {
			return complexKey(v, r), true
		}
	case string:
		if s.DType.Kind == 'U' {
			return "s" + v, true
		}
	case []byte:
		if s.DType.Kind == 'S' {
			return "b" + string(v), true
		}
	}
	return "", false
}

// dictSet is d[k] = v for a dict or OrderedDict: an equal key keeps its
// place and first spelling and takes the new value.
func (m *machine) dictSet(o op, d, k, v ref) error {
	key, hashable, modelled, err := m.hashKey(k, 0)
	if err != nil {
		return err
	}
	if !hashable {
		return fail(o.Off, "%s: unhashable type: '%s'", opName(o.Code), m.at(k).kind)
	}
	nd := m.at(d)
	if !modelled {
		nd.flags |= fNoDedup
		nd.items = append(nd.items, k, v)
		return nil
	}
	idx, _ := nd.x.(map[string]int)
	if idx == nil {
		idx = map[string]int{}
		nd.x = idx
	}
	if i, ok := idx[key]; ok {
		nd.items[2*i+1] = v
		return nil
	}
	if err := m.grow(o.Off, int64(len(key))); err != nil {
		return err
	}
	idx[key] = len(nd.items) / 2
	nd.items = append(nd.items, k, v)
	return nil
}

// setAdd is s.add(x) for a set or frozenset being built: an item equal to
// one already there is dropped.
func (m *machine) setAdd(o op, s, x ref) error {
	key, hashable, modelled, err := m.hashKey(x, 0)
	if err != nil {
		return err
	}
	if !hashable {
		return fail(o.Off, "%s: unhashable type: '%s'", opName(o.Code), m.at(x).kind)
	}
	nd := m.at(s)
	if !modelled {
		nd.flags |= fNoDedup
		nd.items = append(nd.items, x)
		return nil
	}
	idx, _ := nd.x.(map[string]int)
	if idx == nil {
		idx = map[string]int{}
		nd.x = idx
	}
	if _, ok := idx[key]; ok {
		return nil
	}
	if err := m.grow(o.Off, int64(len(key))); err != nil {
		return err
	}
	idx[key] = len(nd.items)
	nd.items = append(nd.items, x)
	return nil
}

// repr describes a node for messages, shortly.
func (m *machine) repr(r ref) string {
	var b strings.Builder
	m.writeRepr(&b, r, 0)
	s := b.String()
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func (m *machine) argsRepr(args []ref) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, a := range args {
		if i > 0 {
			b.WriteString(", ")
		}
		m.writeRepr(&b, a, 1)
		if b.Len() > 120 {
			b.WriteString(", ...")
			break
		}
	}
	if len(args) == 1 {
		b.WriteByte(',')
	}
	b.WriteByte(')')
	return b.String()
}

func (m *machine) writeRepr(b *strings.Builder, r ref, depth int) {
	nd := m.at(r)
	if depth > 3 || b.Len() > 120 {
		b.WriteString("...")
		return
	}
	switch nd.kind {
	case kNone:
		b.WriteString("None")
	case kBool:
		b.WriteString([...]string{"False", "True"}[nd.i&1])
	case kInt:
		v, _ := m.intOf(r)
		if v.big != nil {
			fmt.Fprintf(b, "<int of %d bits>", v.big.BitLen())
		} else {
			b.WriteString(strconv.FormatInt(v.small, 10))
		}
	case kFloat:
		b.WriteString(strconv.FormatFloat(m.floatOf(r), 'g', -1, 64))
	case kStr:
		s, _ := m.str(r)
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		b.WriteString(strconv.Quote(s))
	case kBytes:
		v, _ := m.bytesOf(r)
		if len(v) > 40 {
			fmt.Fprintf(b, "<%d bytes>", len(v))
		} else {
			b.WriteString("b" + strconv.Quote(string(v)))
		}
	case kTuple:
		b.WriteByte('(')
		for i, it := range nd.items {
			if i > 0 {
				b.WriteString(", ")
			}
			if i >= 8 {
				b.WriteString("...")
				break
			}
			m.writeRepr(b, it, depth+1)
		}
		if len(nd.items) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	case kGlobal:
		n := nd.x.([2]string)
		b.WriteString(n[0] + "." + n[1])
	case kDType:
		b.WriteString("dtype(" + strconv.Quote(nd.x.(DType).String()) + ")")
	case kDTypeNew:
		b.WriteString("dtype(" + strconv.Quote(nd.x.(*dtypeNew).descr) + ") before BUILD")
	case kOpaque:
		op := nd.x.(*opaque)
		fmt.Fprintf(b, "<%s.%s object>", op.module, op.name)
	default:
		fmt.Fprintf(b, "<%s>", nd.kind)
	}
}
