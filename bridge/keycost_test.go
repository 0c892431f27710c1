package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"testing"
)

// Keys shared through the memo: a dict or set that uses one object as a key
// many times must key it once (pickle.load's CPython caches the hash of a
// str or tuple; numpy hashes a scalar at each use, but each use is one
// opcode here, not the scalar's size). Each file below is under 1 MB and
// uses one key of up to 500 KB 50,000 to 150,000 times; keying it at each
// use reads tens of gigabytes (a tuple key holding a dtype, which this
// package does not model, took 80 s).

// keyScalar is numpy.core.multiarray.scalar(dtype(descr) with state, raw),
// memoized at slot.
func keyScalar(descr, order string, align int32, raw []byte, slot byte) []byte {
	flags := byte(0)
	if descr[0] == 'U' {
		flags = 8 // numpy's for str_
	}
	return pkl("numpy.core.multiarray", "scalar", opStackGlobal,
		"numpy", "dtype", opStackGlobal, descr, opNewFalse, opNewTrue, opTuple3, opReduce,
		opMark, opBinInt1, 3, order, opNone, opNone, opNone, opBinInt, le32(int32(len(raw))), opBinInt, le32(align), opBinInt1, flags, opTuple, opBuild,
		opBinBytes, le32(int32(len(raw))), raw, opTuple2, opReduce, opBinPut, slot, opPop)
}

// dictKeyUses is a dict that sets memo slot 1 as a key n times.
func dictKeyUses(n int) []byte {
	return pkl(opEmptyDict, opMark, bytes.Repeat(pkl(opBinGet, 1, opNone), n), opSetItems)
}

// ucs4 is the UTF-32 of n characters c, then last.
func ucs4(n int, c, last uint32) []byte {
	var b []byte
	for range n {
		b = binary.LittleEndian.AppendUint32(b, c)
	}
	return binary.LittleEndian.AppendUint32(b, last)
}

// TestKeysHashedOnce bounds the work of keying (keyWork: one per node keyed
// plus the bytes and items it reads) by a small multiple of the file's size.
// Not parallel: keyWork is process-wide.
func TestKeysHashedOnce(t *testing.T) {
	const big = 500_000
	dtNew := pkl("numpy", "dtype", opStackGlobal, "f8", opNewFalse, opNewTrue, opTuple3, opReduce)
	nuls := make([]byte, big)
	ks := bytes.Repeat([]byte("k"), big)
	ints := pkl(opMark, bytes.Repeat([]byte{opBinInt1, 7}, 10_000))
	cases := []struct {
		name  string
		value []byte
		limit bool // refused by MaxValueBytes (the work counts there)
	}{
		{name: "S500000 scalar of NULs (a short key) as a dict key", value: pkl(keyScalar("S"+strconv.Itoa(big), "|", 1, nuls, 1), dictKeyUses(150_000))},
		{name: "S500000 scalar (a long key) as a dict key", value: pkl(keyScalar("S"+strconv.Itoa(big), "|", 1, ks, 1), dictKeyUses(150_000))},
		{name: "U100000 scalar as a set item",
			value: pkl(keyScalar("U100000", "<", 4, ucs4(99_999, 'u', 'v'), 1),
				opEmptySet, opMark, bytes.Repeat(pkl(opBinGet, 1), 150_000), opAddItems)},
		{name: "big-endian U scalar of NULs as a dict key",
			value: pkl(keyScalar("U100000", ">", 4, make([]byte, 400_000), 1), dictKeyUses(150_000))},
		{name: "tuple of 10,000 ints and a dtype (not modelled) as a dict key",
			value: pkl(ints, dtNew, opTuple, opBinPut, 1, opPop, dictKeyUses(100_000))},
		{name: "tuple of a big scalar and a dtype as a set item",
			value: pkl(keyScalar("S"+strconv.Itoa(big), "|", 1, ks, 2), opBinGet, 2, dtNew, opTuple2, opBinPut, 1, opPop,
				opEmptySet, opMark, bytes.Repeat(pkl(opBinGet, 1), 150_000), opAddItems)},
		{name: "new 1-tuples around a big scalar as dict keys",
			value: pkl(keyScalar("S"+strconv.Itoa(big), "|", 1, ks, 1), opEmptyDict, opMark, bytes.Repeat(pkl(opBinGet, 1, opTuple1, opNone), 100_000), opSetItems)},
		{name: "frozensets of a tuple of 10,000 ints and a dtype",
			value: pkl(ints, dtNew, opTuple, opBinPut, 1, opPop, opEmptyDict, opMark,
				bytes.Repeat(pkl(opMark, opBinGet, 1, opFrozenSet, opNone), 100_000), opSetItems)},
		{name: "frozenset() of one shared list of 50,000 items, 30,000 times", limit: true,
			value: pkl(opMark, bytes.Repeat([]byte{opBinInt1, 7}, 50_000), opList, opBinPut, 1, opPop,
				"builtins", "frozenset", opStackGlobal, opBinPut, 2, opPop,
				opMark, bytes.Repeat(pkl(opBinGet, 2, opBinGet, 1, opTuple1, opReduce), 30_000), opList)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := testFile(testEntryMemo("a", c.value, true, 3))
			if len(data) >= 1<<20 {
				t.Fatalf("%d bytes", len(data))
			}
			before := keyWork.Load()
			// A value that stops at a limit refuses the whole file, at
			// NewReader (its later memo writes are unknown).
			r, getErr := newReaderBytes(data)
			if getErr == nil {
				_, getErr = r.Get("a")
			}
			_, verr := Verify(bytes.NewReader(data), int64(len(data)), nil)
			work := keyWork.Load() - before
			if c.limit {
				if !errors.Is(getErr, ErrLimit) {
					t.Errorf("reading: %v, want ErrLimit", getErr)
				}
			} else if getErr != nil {
				t.Errorf("reading: %v", getErr)
			}
			if verr != nil && !c.limit {
				t.Errorf("Verify: %v", verr)
			}
			// Reading and verifying key each node once, or a few times.
			bound := 8 * int64(len(data))
			if c.limit {
				bound += 8 * defaultMaxValueBytes / 16 // the set entries counted before the limit
			}
			t.Logf("%d bytes, key work %d (bound %d); Get: %v", len(data), work, bound, getErr)
			if work > bound {
				t.Errorf("keying a %d-byte file's keys read %d (bound %d): a key is made again at each use", len(data), work, bound)
			}
		})
	}
}
