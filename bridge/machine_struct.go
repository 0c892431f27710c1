package bridge

import "fmt"

// BUILD of structured and subarray dtypes, checked against what numpy
// writes:
//
//	structured: (3, '|', None, names, fields, itemsize, alignment, flags)
//	  names      a tuple of the field names, in order
//	  fields     a dict {name: (dtype, offset)}, exactly the names
//	  alignment  1, or for align=True the largest alignment of the fields
//	  flags      16 | the fields' flags | 128 for align=True (numpy 1.x
//	             writes that byte signed: -112 for 144)
//	subarray:   (3, '|', (base, shape), None, None, itemsize, base's
//	            alignment, base's flags)
//
// numpy keeps the fields dict itself as the dtype's: a later SETITEM on it
// would change the dtype after it was built, so the dict is frozen
// (setItems refuses).

// structState checks the state items of a void dtype of size bytes with a
// subarray, names or fields, and returns the dtype; why says what is not as
// numpy writes it.
func (m *machine) structState(it []ref, size int, off int64) (DType, string) {
	if sub := m.at(it[2]); sub.kind != kNone {
		if sub.kind != kTuple || len(sub.items) != 2 || !m.isNone(it[3]) || !m.isNone(it[4]) {
			return DType{}, "subarray " + m.repr(it[2])
		}
		bn := m.at(sub.items[0])
		if bn.kind != kDType {
			return DType{}, "subarray of " + m.repr(sub.items[0])
		}
		base := bn.x.(DType)
		sn := m.at(sub.items[1])
		if sn.kind != kTuple || len(sn.items) == 0 || len(sn.items) > 32 {
			return DType{}, "subarray shape " + m.repr(sub.items[1])
		}
		shape := make([]int, len(sn.items))
		for i, r := range sn.items {
			v, ok := m.smallInt(r)
			if !ok || v < 0 || v > 1<<31-1 {
				return DType{}, "subarray shape " + m.repr(sub.items[1])
			}
			shape[i] = int(v)
		}
		d, err := SubArrayDType(base, shape)
		if err != nil {
			return DType{}, err.Error()
		}
		return d, m.checkStructNumbers(it, d, false, off)
	}
	nn, fn := m.at(it[3]), m.at(it[4])
	if nn.kind != kTuple || fn.kind != kDict || len(nn.items) == 0 || len(nn.items) > maxFields || len(fn.items) != 2*len(nn.items) {
		return DType{}, fmt.Sprintf("names %s and fields %s", m.repr(it[3]), m.repr(it[4]))
	}
	if fn.flags&fNoDedup != 0 {
		return DType{}, "fields " + m.repr(it[4])
	}
	byName := make(map[string]ref, len(nn.items))
	for i := 0; i < len(fn.items); i += 2 {
		k, ok := m.str(fn.items[i])
		if !ok {
			return DType{}, "a field named " + m.repr(fn.items[i])
		}
		byName[k] = fn.items[i+1]
	}
	fields := make([]Field, len(nn.items))
	for i, r := range nn.items {
		name, ok := m.str(r)
		if !ok {
			return DType{}, "a field named " + m.repr(r)
		}
		v, ok := byName[name]
		if !ok {
			return DType{}, fmt.Sprintf("names %s that fields lack", m.repr(it[3]))
		}
		t := m.at(v)
		if t.kind != kTuple || len(t.items) != 2 {
			if t.kind == kTuple && len(t.items) == 3 {
				return DType{}, fmt.Sprintf("field %q with a title (not represented)", clipName(name))
			}
			return DType{}, fmt.Sprintf("field %q as %s", clipName(name), m.repr(v))
		}
		dn := m.at(t.items[0])
		if dn.kind != kDType {
			return DType{}, fmt.Sprintf("field %q of dtype %s", clipName(name), m.repr(t.items[0]))
		}
		off, ok := m.smallInt(t.items[1])
		if !ok || off < 0 || off > int64(size) {
			return DType{}, fmt.Sprintf("field %q at offset %s", clipName(name), m.repr(t.items[1]))
		}
		fields[i] = Field{Name: name, DType: dn.x.(DType), Offset: int(off)}
	}
	flags, ok := m.smallInt(it[7])
	if !ok {
		return DType{}, "flags " + m.repr(it[7])
	}
	aligned := flags&0x80 != 0
	d, err := StructDType(fields, size, aligned)
	if err != nil {
		return DType{}, err.Error()
	}
	if why := m.checkStructNumbers(it, d, true, off); why != "" {
		return DType{}, why
	}
	fn.flags |= fFrozen
	return d, ""
}

// checkStructNumbers checks the item size, alignment and flags of the state.
func (m *machine) checkStructNumbers(it []ref, d DType, structured bool, off int64) string {
	align := int64(d.alignment())
	if structured && !d.Aligned() {
		align = 1
	}
	for i, want := range []int64{int64(d.ItemSize), align} {
		if v, ok := m.smallInt(it[5+i]); !ok || v != want {
			return fmt.Sprintf("%s %s (numpy writes %d)", [...]string{"element size", "alignment"}[i], m.repr(it[5+i]), want)
		}
	}
	want := dtypeFlags(d)
	v, ok := m.smallInt(it[7])
	if !ok || (v != want && !(want >= 128 && v == want-256)) {
		return fmt.Sprintf("flags %s (numpy writes %d)", m.repr(it[7]), want)
	}
	if v >= 128 {
		m.warn(off, fmt.Sprintf("aligned structured dtype with flags %d as numpy 2 writes them: plain pickle.load fails on numpy 1.x (it takes %d)", v, v-256))
	}
	return ""
}

// dtypeFlags is numpy's flags byte of d, unsigned (as numpy 2 writes it;
// numpy 1.x writes and reads it signed: 144 is -112 there, and numpy 2 reads
// -112 as 16, dropping align=True but not the layout).
func dtypeFlags(d DType) int64 {
	if base, _, ok := d.SubArray(); ok {
		return dtypeFlags(base)
	}
	if !d.structured() {
		_, _, _, f := dtypeStateOf(d)
		return f
	}
	f := int64(16)
	for _, fl := range d.Fields() {
		f |= dtypeFlags(fl.DType) &^ 0x80 // a field's alignment is its own
	}
	if d.Aligned() {
		f |= 0x80
	}
	return f
}
