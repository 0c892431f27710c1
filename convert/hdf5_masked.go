//go:build !nohdf5

package convert

import (
	"fmt"
	"slices"

	"mmpbridge/bridge"
	"mmpbridge/internal/atomicfile"
	"mmpbridge/pyval"
)

// Masked arrays in HDF5 files: mmpconv writes the data as the dataset KEY,
// the mask as KEY.mask (h5py's booleans, the data's shape) and the fill
// value, when the file keeps one, as the attribute fill_value of KEY (a
// scalar of the data's dtype). Read back, such a pair is one masked array
// and the attribute its fill value (not repeated in __attrs__). A KEY.mask
// that is not such a mask leaves both datasets plain arrays.

// h5masks pairs datasets: data key -> its mask, and the masks' keys.
type h5masks struct {
	byData map[string]*h5dataset
	ofData map[string]bool
}

func (r *h5reader) maskedPairs() h5masks {
	ms := h5masks{byData: map[string]*h5dataset{}, ofData: map[string]bool{}}
	byKey := make(map[string]*h5dataset, len(r.datasets))
	for i := range r.datasets {
		byKey[r.datasets[i].key] = &r.datasets[i]
	}
	for i := range r.datasets {
		d := &r.datasets[i]
		m := byKey[d.key+".mask"]
		if m == nil || d.empty != "" || d.asList || m.empty != "" || ms.ofData[d.key] || m.h.DType.Kind != 'b' || m.h.DType.ItemSize != 1 ||
			!slices.Equal(m.h.Shape, d.h.Shape) || m.h.Fortran != d.h.Fortran {
			continue
		}
		ms.byData[d.key] = m
		ms.ofData[m.key] = true
	}
	return ms
}

// fillOf takes the fill value of the masked array whose data is d out of
// the attributes read: nil when there is none (or it is not one element
// of the data's dtype: then it stays an attribute).
func (r *h5reader) fillOf(d *h5dataset) []byte {
	for i, o := range r.attrs {
		if o.Key != d.path {
			continue
		}
		attrs, _ := o.Value.(pyval.Dict)
		for j, a := range attrs {
			if a.Key != fillAttr {
				continue
			}
			b := fillBytes(a.Value, d.h.DType)
			if b == nil {
				return nil
			}
			attrs = slices.Delete(attrs, j, j+1)
			if len(attrs) == 0 {
				r.attrs = slices.Delete(r.attrs, i, i+1)
			} else {
				r.attrs[i].Value = attrs
			}
			return b
		}
	}
	return nil
}

// fillBytes encodes an attribute's value as one element of dt.
func fillBytes(v any, dt bridge.DType) []byte {
	switch x := v.(type) {
	case *bridge.Scalar:
		if x.DType.Kind != dt.Kind || x.DType.ItemSize != dt.ItemSize {
			return nil
		}
		return normalizeOrder(x.Raw, x.DType, dt.ByteOrder)
	case *bridge.NDArray:
		if len(x.Shape) != 0 || x.DType.Kind != dt.Kind || x.DType.ItemSize != dt.ItemSize {
			return nil
		}
		return normalizeOrder(x.Data, x.DType, dt.ByteOrder)
	case *bridge.Array:
		if len(x.Shape) != 0 || x.DType.Kind != dt.Kind || x.DType.ItemSize != dt.ItemSize {
			return nil
		}
		b := make([]byte, x.NBytes)
		if _, err := x.Section().ReadAt(b, 0); err != nil {
			return nil
		}
		return normalizeOrder(b, x.DType, dt.ByteOrder)
	}
	b, ok := scalarBytes(v, dt)
	if !ok {
		return nil
	}
	le := dt
	le.ByteOrder = '<'
	return normalizeOrder(b, le, dt.ByteOrder)
}

// copyMasked stores the datasets d (data) and m (mask) as one masked
// array: both are read into an unnamed scratch file first (as any dataset
// is read into its slot), then streamed into the output.
func (r *h5reader) copyMasked(out *bridge.File, d, m *h5dataset, fill []byte, p *progress) error {
	sf, err := atomicfile.Scratch(r.opt.scratchDir)
	if err != nil {
		return fmt.Errorf("%s: a scratch file in %s: %w", r.src, r.opt.scratchDir, err)
	}
	scratch, err := bridge.NewFile(sf, true, bridge.WithProfile(bridge.Portable), bridge.WithoutIndex())
	if err != nil {
		sf.Close()
		return err
	}
	defer scratch.Close()
	for _, x := range []*h5dataset{d, m} {
		if err := r.copyDataset(scratch, x, p); err != nil {
			return err
		}
	}
	sr, err := scratch.Reader()
	if err != nil {
		return err
	}
	da, err := sr.Array(d.key)
	if err != nil {
		return err
	}
	ma, err := sr.Array(m.key)
	if err != nil {
		return err
	}
	p.total.Add(d.nbytes + m.nbytes)
	return out.PutMasked(d.key, d.h, &ctxReader{ctx: r.ctx, r: p.reader(da.Section())}, p.reader(ma.Section()), fill)
}
