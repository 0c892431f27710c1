package main

import "mmpbridge/bridge"

// structJSON is a structured dtype as numpy's dtype(dict) takes it:
// numpy.dtype({"names": ..., "formats": ..., "offsets": ..., "itemsize": ...},
// align=aligned). Every field's place is said explicitly, so overlapping
// fields, padding and nested items cannot be misread (numpy's descr list,
// the form .npy headers use, cannot express overlaps: a third item of a
// field is read as a subarray shape).
type structJSON struct {
	Names    []string `json:"names"`
	Formats  []any    `json:"formats"`
	Offsets  []int    `json:"offsets"`
	ItemSize int      `json:"itemsize"`
	Aligned  bool     `json:"aligned"`
}

// dtypeJSON is d for a binding, as JSON: numpy's dtype.str ("<f8",
// "|S3", "<M8[ms]") for a plain dtype, a structJSON object for a
// structured one, and [base, shape] for a subarray (a field's dtype), base
// being again one of the three.
func dtypeJSON(d bridge.DType) any {
	if base, shape, ok := d.SubArray(); ok {
		return []any{dtypeJSON(base), shape}
	}
	fs := d.Fields()
	if fs == nil {
		return d.String()
	}
	s := structJSON{
		Names:    make([]string, len(fs)),
		Formats:  make([]any, len(fs)),
		Offsets:  make([]int, len(fs)),
		ItemSize: d.ItemSize,
		Aligned:  d.Aligned(),
	}
	for i, f := range fs {
		s.Names[i], s.Formats[i], s.Offsets[i] = f.Name, dtypeJSON(f.DType), f.Offset
	}
	return s
}
