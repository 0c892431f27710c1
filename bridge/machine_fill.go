package bridge

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
)

// A masked array's fill value as numpy.ma's __setstate__ makes it: the
// state's 0-d array converted to the data's dtype (MaskedArray.fill_value's
// setter runs np.asarray(value, dtype=data's dtype)). numpy writes the fill
// in the data's dtype, but a datetime64 or timedelta64 fill may come in
// another unit or byte order; pickle.load then holds the converted value,
// so Masked.Fill does too.

// datetimeSteps are the linear datetime units, coarsest first, and how
// many of each make one of the one before (W is 7 D, D is 24 h, ...).
var datetimeSteps = []struct {
	unit string
	per  int64
}{
	{"W", 1}, {"D", 7}, {"h", 24}, {"m", 60}, {"s", 60}, {"ms", 1000}, {"us", 1000},
	{"ns", 1000}, {"ps", 1000}, {"fs", 1000}, {"as", 1000},
}

func datetimeStep(unit string) int {
	for i, s := range datetimeSteps {
		if s.unit == unit {
			return i
		}
	}
	return -1
}

// fillFor returns f, a masked array's 0-d fill array of a dtype
// fillCompatible with the data's d, as numpy holds it: f itself when of
// dtype d, else a copy converted to d (its bytes in memory, not in the
// file). A conversion this package does not reproduce exactly (calendar
// units, generic units, an overflow numpy would wrap) is refused.
func (m *machine) fillFor(o op, f *Array, d DType) (*Array, error) {
	if f.DType == d {
		return f, nil
	}
	if f.NBytes != 8 || f.DType.ItemSize != 8 || d.ItemSize != 8 {
		return nil, refuse(o.Off, "masked array's fill value of dtype %s for data of dtype %s: not modelled", f.DType, d)
	}
	raw, err := m.src.readAt(f.Offset, 8)
	if err != nil {
		return nil, err
	}
	v := int64(fillOrder(f.DType).Uint64(raw))
	w, ok := convertDatetime(v, f.DType, d)
	if !ok {
		return nil, refuse(o.Off, "masked array's fill value %d of dtype %s: numpy converts it to the data's dtype %s in a way this package does not reproduce exactly (calendar or generic units, or an overflow)", v, f.DType, d)
	}
	if err := m.grow(o.Off, 8); err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	fillOrder(d).PutUint64(b, uint64(w))
	src := &source{data: b, ra: bytes.NewReader(b), size: 8}
	return &Array{DType: d, Shape: []int{}, Profile: f.Profile, Offset: 0, NBytes: 8, src: src}, nil
}

func fillOrder(d DType) binary.ByteOrder {
	if d.ByteOrder == '>' {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// convertDatetime converts a datetime64 or timedelta64 value v from the
// unit of dtype from to that of to as numpy's cast does: NaT stays NaT; the
// value times num over denom, the reduced ratio of the units, rounded toward
// minus infinity. ok is false where this is not exact integer arithmetic in
// numpy: calendar units (Y, M) or generic ones on either side, a ratio or
// product past int64 (numpy raises, or wraps around).
func convertDatetime(v int64, from, to DType) (int64, bool) {
	if v == math.MinInt64 {
		return v, true // NaT
	}
	if from.Unit == to.Unit && from.UnitCount == to.UnitCount {
		return v, true // only the byte order differs
	}
	i, j := datetimeStep(from.Unit), datetimeStep(to.Unit)
	if i < 0 || j < 0 || from.UnitCount < 1 || to.UnitCount < 1 {
		return 0, false
	}
	factor := big.NewInt(1)
	for k := min(i, j) + 1; k <= max(i, j); k++ {
		factor.Mul(factor, big.NewInt(datetimeSteps[k].per))
	}
	num, denom := big.NewInt(int64(from.UnitCount)), big.NewInt(int64(to.UnitCount))
	if i < j {
		num.Mul(num, factor) // from the coarser unit: more of the finer
	} else {
		denom.Mul(denom, factor)
	}
	if !num.IsInt64() || !denom.IsInt64() {
		return 0, false
	}
	g := new(big.Int).GCD(nil, nil, num, denom)
	num.Quo(num, g)
	denom.Quo(denom, g)
	// numpy: v < 0 ? (v*num - (denom-1)) / denom : v*num / denom, in
	// int64 with C's truncating division.
	x := new(big.Int).Mul(big.NewInt(v), num)
	if v < 0 {
		x.Sub(x, new(big.Int).Sub(denom, big.NewInt(1)))
	}
	if !x.IsInt64() {
		return 0, false // numpy wraps around
	}
	x.Quo(x, denom)
	if !x.IsInt64() || x.Int64() == math.MinInt64 {
		return 0, false
	}
	return x.Int64(), true
}
