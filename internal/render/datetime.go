package render

import (
	"fmt"
	"math"
	"math/big"
	"strings"

	"mmpbridge/bridge"
)

// nat is numpy's NaT: the smallest int64.
const nat = math.MinInt64

// unitsPerSecond for the datetime units under a second.
var unitsPerSecond = map[string]int64{"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9, "ps": 1e12, "fs": 1e15, "as": 1e18}

// secondsPerUnit for the units of an hour and a minute.
var secondsPerUnit = map[string]int64{"h": 3600, "m": 60}

// datetimeText is numpy's text of a datetime64 count in the dtype's unit:
// 2020, 2020-01, 2020-01-02, 2020-01-02T03:04:05.678; NaT.
func datetimeText(v int64, d bridge.DType) string {
	if v == nat {
		return "NaT"
	}
	if d.Unit == "" {
		return fmt.Sprint(v) // a generic datetime has no calendar
	}
	count := big.NewInt(int64(max(d.UnitCount, 1)))
	n := new(big.Int).Mul(big.NewInt(v), count)
	switch d.Unit {
	case "Y":
		y := new(big.Int).Add(n, big.NewInt(1970))
		return yearText(y)
	case "M":
		y, m := floorDivMod(n, big.NewInt(12))
		return fmt.Sprintf("%s-%02d", yearText(y.Add(y, big.NewInt(1970))), m.Int64()+1)
	case "W", "D":
		if d.Unit == "W" {
			n.Mul(n, big.NewInt(7))
		}
		return dateText(n)
	}
	// Units of a day or less: whole seconds and a fraction.
	var secs, frac *big.Int
	digits := 0
	if per, ok := unitsPerSecond[d.Unit]; ok {
		secs, frac = floorDivMod(n, big.NewInt(per))
		digits = len(fmt.Sprint(per)) - 1
	} else {
		secs, frac = new(big.Int).Mul(n, big.NewInt(secondsPerUnit[d.Unit])), new(big.Int)
	}
	days, sod := floorDivMod(secs, big.NewInt(86400))
	s := sod.Int64()
	t := dateText(days) + fmt.Sprintf("T%02d", s/3600)
	if d.Unit != "h" {
		t += fmt.Sprintf(":%02d", s/60%60)
	}
	if d.Unit != "h" && d.Unit != "m" {
		t += fmt.Sprintf(":%02d", s%60)
	}
	if digits > 0 {
		f := frac.String()
		t += "." + strings.Repeat("0", digits-len(f)) + f
	}
	return t
}

func floorDivMod(a, b *big.Int) (q, r *big.Int) {
	q, r = new(big.Int), new(big.Int)
	q.DivMod(a, b, r) // Euclidean: r >= 0, so q is the floor for b > 0
	return q, r
}

// dateText is the proleptic Gregorian date of a day count from 1970-01-01.
func dateText(days *big.Int) string {
	// Howard Hinnant's civil_from_days, on big ints.
	z := new(big.Int).Add(days, big.NewInt(719468))
	era, doe := floorDivMod(z, big.NewInt(146097))
	e := doe.Int64()
	yoe := (e - e/1460 + e/36524 - e/146096) / 365
	doy := e - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	y := new(big.Int).Add(big.NewInt(yoe), new(big.Int).Mul(era, big.NewInt(400)))
	if m <= 2 {
		y.Add(y, big.NewInt(1))
	}
	return fmt.Sprintf("%s-%02d-%02d", yearText(y), m, d)
}

// yearText has at least four digits, as numpy prints years.
func yearText(y *big.Int) string {
	if y.Sign() < 0 {
		return "-" + fmt.Sprintf("%04s", new(big.Int).Neg(y).String())
	}
	return fmt.Sprintf("%04s", y.String())
}

// unitText is a dtype's unit as numpy's reprs give it: "ms", "10ms".
func unitText(d bridge.DType) string {
	if d.UnitCount > 1 {
		return fmt.Sprintf("%d%s", d.UnitCount, d.Unit)
	}
	return d.Unit
}

func timedeltaRepr(v int64, d bridge.DType) string {
	switch {
	case v == nat && d.Unit == "":
		return "np.timedelta64('NaT')"
	case v == nat:
		return fmt.Sprintf("np.timedelta64('NaT','%s')", unitText(d))
	case d.Unit == "":
		return fmt.Sprintf("np.timedelta64(%d)", v)
	}
	return fmt.Sprintf("np.timedelta64(%d,'%s')", v, unitText(d))
}
