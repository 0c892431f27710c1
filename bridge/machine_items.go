package bridge

import (
	"fmt"
	"math"
	"math/big"
)

// The machine's view of its nodes (accessors), the containers opcodes
// fill, and the memo.

// str returns the Go (canonical) string of a str node.
func (m *machine) str(r ref) (string, bool) {
	nd := m.at(r)
	if nd.kind != kStr {
		return "", false
	}
	if s, ok := nd.x.(string); ok {
		return s, true
	}
	b, err := m.src.readAt(nd.i, nd.n)
	if err != nil {
		return "", false
	}
	if s, ok := m.interned[string(b)]; ok {
		return s, true
	}
	s := string(b)
	if len(s) <= 64 && len(m.interned) < 4096 {
		if m.interned == nil {
			m.interned = map[string]string{}
		}
		m.interned[s] = s
	}
	// Kept in the node: a string shared through the memo is copied once,
	// not at each use.
	nd.x = s
	return s, true
}

// bytesOf returns the content of a bytes or bytearray node (aliasing the
// mapping when there is one).
func (m *machine) bytesOf(r ref) ([]byte, bool) {
	nd := m.at(r)
	if nd.kind != kBytes && nd.kind != kByteArray {
		return nil, false
	}
	if b, ok := nd.x.([]byte); ok {
		return b, true
	}
	b, err := m.src.readAt(nd.i, nd.n)
	return b, err == nil
}

// intOf returns the value of an int (not a bool) node.
func (m *machine) intOf(r ref) (pyInt, bool) {
	nd := m.at(r)
	if nd.kind != kInt {
		return pyInt{}, false
	}
	if b, ok := nd.x.(*big.Int); ok {
		return pyInt{big: b}, true
	}
	return pyInt{small: nd.i}, true
}

// smallInt returns an int node's value when it fits an int64.
func (m *machine) smallInt(r ref) (int64, bool) {
	v, ok := m.intOf(r)
	if !ok || v.big != nil {
		return 0, false
	}
	return v.small, true
}

func (m *machine) isNone(r ref) bool { return m.at(r).kind == kNone }

func (m *machine) boolOf(r ref) (bool, bool) {
	nd := m.at(r)
	return nd.i != 0, nd.kind == kBool
}

func (m *machine) floatOf(r ref) float64 { return math.Float64frombits(uint64(m.at(r).i)) }

// pushContainer pushes a new list or tuple holding items.
func (m *machine) pushContainer(k kind, items []ref, off int64) error {
	nd := node{kind: k, items: items, off: off}
	if k == kTuple {
		nd.nest = m.nestOver(items)
	}
	return m.push(nd)
}

// maxKeyNest is the deepest nesting of tuples and frozensets accepted in a
// dict key or a set item. CPython compares two distinct keys of equal hash
// (equal keys, or a crafted collision) item by item, one level of its
// recursion limit per level of nesting: with the default limit of 1000,
// dict and set insertion of a second key equal to one of 1000 nested
// tuples raises RecursionError when pickle.load runs at module level, and
// less deep by as many frames as its caller has (measured on CPython
// 3.11.7: 898 under 100 frames, 498 under 500). Refusing every key nested
// deeper than 200, whether or not it meets another, leaves 800 frames to
// the caller of pickle.load; no pickle of plain data nests keys that deep.
const maxKeyNest = 200

// nestOver is the nesting of a tuple or frozenset holding items (saturated:
// anything past maxKeyNest is refused anyway).
func (m *machine) nestOver(items []ref) uint16 {
	n := uint16(0)
	for _, it := range items {
		n = max(n, m.at(it).nest)
	}
	if n > maxKeyNest {
		return maxKeyNest + 1
	}
	return n + 1
}

// keyNest refuses x as a dict key or set item when it nests tuples and
// frozensets deeper than maxKeyNest (pickle.load may raise
// RecursionError comparing it), and counts x in the nesting of s when s is
// a frozenset being built.
func (m *machine) keyNest(o op, s, x ref) error {
	n := m.at(x).nest
	if int(n) > maxKeyNest {
		return refuse(o.Off, "%s: a key nesting tuples or frozensets more than %d deep: pickle.load may raise RecursionError comparing it (at about 1000 less the caller's stack depth)", opName(o.Code), maxKeyNest)
	}
	if sn := m.at(s); sn.kind == kFrozenSet {
		sn.nest = max(sn.nest, n+1)
	}
	return nil
}

// markedUpdate is APPENDS, SETITEMS and ADDITEMS: the items above the MARK
// go into the object below it. With no items nothing happens, whatever the
// object is (CPython returns before looking at it).
func (m *machine) markedUpdate(o op) error {
	if len(m.marks) == 0 {
		if m.stream {
			return fail(o.Off, "%s: could not find MARK", opName(o.Code))
		}
		return structErr(o.Off, "%s without a MARK in the value", opName(o.Code))
	}
	// The object is the item just below the MARK; CPython looks for it
	// even when there are no items.
	if k := m.marks[len(m.marks)-1]; k-1 < m.base {
		if !m.stream {
			return structErr(o.Off, "%s reaches below the start of the value", opName(o.Code))
		}
		return fail(o.Off, "%s: unpickling stack underflow", opName(o.Code))
	}
	items, err := m.popMark(o)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	t := m.stack[len(m.stack)-1]
	switch o.Code {
	case opAppends:
		return m.appendItems(o, t, items)
	case opSetItems:
		if len(items)%2 != 0 {
			return fail(o.Off, "odd number of items for SETITEMS")
		}
		return m.setItems(o, t, items)
	}
	return m.addItems(o, t, items)
}

// appendItems is APPEND(S) on t: list.append/extend for a list.
func (m *machine) appendItems(o op, t ref, items []ref) error {
	nd := m.at(t)
	if nd.flags&fViewed != 0 {
		return refuse(o.Off, "%s on a bytearray an array was built over: pickle.load would resize or change the array's data after it was built (BufferError, or other bytes than the file's)", opName(o.Code))
	}
	switch nd.kind {
	case kList:
		nd.items = append(nd.items, items...)
		return nil
	case kOpaque:
		return nil
	case kByteArray:
		m.opaqueNode(t, o.Off, "builtins", "bytearray", fmt.Sprintf("%s on a bytearray (CPython's pickler never writes it)", opName(o.Code)))
		return nil
	case kArray, kMasked, kFromString:
		return refuse(o.Off, "%s on an array after it was built: not modelled", opName(o.Code))
	}
	return fail(o.Off, "%s: %s object has no attribute 'append'", opName(o.Code), nd.kind)
}

// setItems is SETITEM(S) and DICT: key, value pairs into t.
func (m *machine) setItems(o op, t ref, items []ref) error {
	nd := m.at(t)
	if nd.flags&fFrozen != 0 {
		return refuse(o.Off, "%s on a dict a numpy dtype holds (a structured dtype's fields or a dtype's metadata): pickle.load would change the dtype after it was built", opName(o.Code))
	}
	if nd.flags&fViewed != 0 {
		return refuse(o.Off, "%s on a bytearray an array was built over: pickle.load would change the array's data after it was built, so the file's bytes are not its value", opName(o.Code))
	}
	switch nd.kind {
	case kDict, kODict:
		for i := 0; i < len(items); i += 2 {
			if err := m.keyNest(o, t, items[i]); err != nil {
				return err
			}
			if err := m.dictSet(o, t, items[i], items[i+1]); err != nil {
				return err
			}
		}
		return nil
	case kList:
		for i := 0; i < len(items); i += 2 {
			if err := m.listSet(o, t, items[i], items[i+1]); err != nil {
				return err
			}
		}
		return nil
	case kOpaque:
		return nil
	case kByteArray:
		m.opaqueNode(t, o.Off, "builtins", "bytearray", "item assignment on a bytearray (CPython's pickler never writes it)")
		return nil
	case kArray, kMasked, kFromString, kArrayNew, kMaskedNew:
		return refuse(o.Off, "%s on an array: pickle.load would change the array, so the file's bytes are not its value", opName(o.Code))
	}
	return fail(o.Off, "%s: '%s' object does not support item assignment", opName(o.Code), nd.kind)
}

// listSet is list[k] = v: k an int (or bool) within the list.
func (m *machine) listSet(o op, t, k, v ref) error {
	kn := m.at(k)
	var i int64
	switch kn.kind {
	case kBool:
		i = kn.i
	case kInt:
		x, ok := m.smallInt(k)
		if !ok {
			return fail(o.Off, "%s: cannot fit 'int' into an index-sized integer", opName(o.Code))
		}
		i = x
	case kSlice:
		m.opaqueNode(t, o.Off, "builtins", "list", "slice assignment to a list (CPython's pickler never writes it)")
		return nil
	default:
		return fail(o.Off, "%s: list indices must be integers or slices, not %s", opName(o.Code), kn.kind)
	}
	items := m.at(t).items
	if i < 0 {
		i += int64(len(items))
	}
	if i < 0 || i >= int64(len(items)) {
		return fail(o.Off, "%s: list assignment index out of range", opName(o.Code))
	}
	items[i] = v
	return nil
}

// addItems is ADDITEMS and FROZENSET: hashable items into a set.
func (m *machine) addItems(o op, t ref, items []ref) error {
	nd := m.at(t)
	switch nd.kind {
	case kSet, kFrozenSet:
		if nd.kind == kFrozenSet && o.Code == opAddItems {
			return fail(o.Off, "ADDITEMS: 'frozenset' object has no attribute 'add'")
		}
		for _, it := range items {
			if err := m.keyNest(o, t, it); err != nil {
				return err
			}
			if err := m.setAdd(o, t, it); err != nil {
				return err
			}
		}
		return nil
	case kOpaque:
		return nil
	}
	return fail(o.Off, "ADDITEMS: '%s' object has no attribute 'add'", nd.kind)
}

// readOnlyBuffer is READONLY_BUFFER: a no-op on bytes, a memoryview of a
// bytearray, an error on anything without the buffer protocol.
func (m *machine) readOnlyBuffer(o op) error {
	t, err := m.top(o)
	if err != nil {
		return err
	}
	switch m.at(t).kind {
	case kBytes:
		m.report(o.Off, "READONLY_BUFFER (protocol 5 buffers are not plain data)")
		return nil
	case kByteArray, kArray, kOpaque:
		m.opaqueNode(t, o.Off, "builtins", "memoryview", "READONLY_BUFFER (protocol 5 buffers are not plain data)")
		return nil
	}
	return fail(o.Off, "READONLY_BUFFER: memoryview: a bytes-like object is required, not '%s'", m.at(t).kind)
}

// opaqueNode turns node r into an opaque object (in place, so every
// reference to it sees the change) and reports why.
func (m *machine) opaqueNode(r ref, off int64, module, name, why string) {
	nd := m.at(r)
	// What viewed the object before still views it: a bytearray under an
	// array, a dict under a dtype stay refused when changed.
	keep := nd.flags & (fViewed | fFrozen)
	*nd = node{kind: kOpaque, flags: keep, off: nd.off, x: &opaque{module: module, name: name, why: why}}
	if why != "" {
		m.report(off, why)
	}
}

// newOpaque makes an opaque node.
func (m *machine) newOpaque(off int64, module, name, why string, trusted bool) (ref, error) {
	return m.newNode(node{kind: kOpaque, off: off, x: &opaque{module: module, name: name, why: why, trusted: trusted}})
}

// report tells the verifier that what pickle.load does here is not plain
// data.
func (m *machine) report(off int64, msg string) {
	if m.sink != nil {
		m.sink.problem(off, msg)
	}
}

func (m *machine) warn(off int64, msg string) {
	if m.sink != nil {
		m.sink.warning(off, msg)
	}
}

func (m *machine) copied(n int64) {
	if m.sink != nil {
		m.sink.copied(n)
	}
}

// memoIndex returns the slot a GET or PUT names. ok is false when CPython
// raises on the index (not a number, negative, too large).
func (m *machine) memoIndex(o op) (int64, error) {
	if opArgs[o.Code] != argLine {
		return o.Int, nil
	}
	b, err := m.src.readAt(o.PayloadOff, o.PayloadLen)
	if err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, fail(o.Off, "%s: pickle data was truncated", opName(o.Code))
	}
	v, ok := parseMemoLine(b)
	if !ok {
		return 0, fail(o.Off, "%s: invalid literal for int() with base 10", opName(o.Code))
	}
	if !v.IsInt64() {
		return 0, fail(o.Off, "%s: Python int too large to convert to C ssize_t", opName(o.Code))
	}
	i := v.Int64()
	if i < 0 {
		if o.Code == opPut {
			return 0, fail(o.Off, "negative PUT argument")
		}
		return 0, fail(o.Off, "Memo value not found at index %d", i)
	}
	return i, nil
}

func (m *machine) memoGet(o op) error {
	i, err := m.memoIndex(o)
	if err != nil {
		return err
	}
	if r, ok := m.memo[i]; ok {
		m.stack = append(m.stack, r)
		return nil
	}
	if m.owners != nil {
		if e, ok := m.owners.owner(i); ok && e != m.entry {
			return &FormatError{Offset: o.Off, Msg: fmt.Sprintf("uses memo slot %d of the entry at offset %d: pickle.load would give a different value", i, m.owners.entryOffset(e)), Err: ErrSharedMemo}
		}
	}
	return fail(o.Off, "Memo value not found at index %d", i)
}

func (m *machine) memoPut(o op) error {
	r, err := m.top(o)
	if err != nil {
		return err
	}
	i := m.memoLen
	if o.Code != opMemoize {
		if i, err = m.memoIndex(o); err != nil {
			return err
		}
	}
	if i >= maxMemoSlots {
		// CPython grows its memo array to twice the index, 16 bytes an
		// index: MemoryError where that is more than it can allocate.
		return refuse(o.Off, "%s %d: pickle.load would allocate %d MiB for its memo (MemoryError where it cannot; refused from index %d)", opName(o.Code), i, (i+1)*16>>20, maxMemoSlots)
	}
	if m.owners != nil {
		if e, ok := m.owners.owner(i); ok && e != m.entry {
			return &FormatError{Offset: o.Off, Msg: fmt.Sprintf("writes memo slot %d of the entry at offset %d: pickle.load would give a different value", i, m.owners.entryOffset(e)), Err: ErrSharedMemo}
		}
		m.owners.write(i, m.entry)
	}
	if _, ok := m.memo[i]; !ok {
		m.memoLen++
	}
	m.memo[i] = r
	m.maxSlot = max(m.maxSlot, i)
	return nil
}
