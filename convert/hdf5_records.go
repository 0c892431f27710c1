package convert

import "mmpbridge/pyval"

// The names of the records that the HDF5 converters keep in "__attrs__"
// beside a dataset's attributes (hdf5_meta.go says what each means), in
// every build, so that code comparing or listing __attrs__ can tell them
// from attributes: see withoutLayoutRecords.

const (
	metaLayout     = "__layout__"
	metaEnum       = "__enum__"
	metaEmpty      = "__empty__"
	metaEmptyAttrs = "__empty_attrs__"
	// emptyStr names variable-length strings in __empty__ records.
	emptyStr = "str"
)

// isReserved tells whether an __attrs__ entry of an object is one of the
// converters' records rather than an attribute.
func isReserved(name string) bool {
	switch name {
	case metaLayout, metaEnum, metaEmpty, metaEmptyAttrs:
		return true
	}
	return false
}

// withoutLayoutRecords returns an __attrs__ value without its "__layout__"
// records (how a dataset was stored: chunks and filters, not what it
// holds), dropping the objects left with nothing; nil when nothing is
// left, as for a file that has no attributes. Other values are returned
// as they are.
func withoutLayoutRecords(v any) any {
	objs, ok := v.(pyval.Dict)
	if !ok {
		return v
	}
	out := make(pyval.Dict, 0, len(objs))
	for _, o := range objs {
		attrs, ok := o.Value.(pyval.Dict)
		if !ok {
			out = append(out, o)
			continue
		}
		kept := make(pyval.Dict, 0, len(attrs))
		for _, a := range attrs {
			if a.Key != metaLayout {
				kept = append(kept, a)
			}
		}
		if len(kept) > 0 || len(attrs) == 0 {
			out = append(out, pyval.DictItem{Key: o.Key, Value: kept})
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
