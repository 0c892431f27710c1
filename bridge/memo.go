package bridge

import (
	"errors"
	"math"
)

// renumberMemo rewrites the memo opcodes of a value pickle (opcodes only,
// as stored in an entry) so that its memo writes use indices memoStart,
// memoStart+1, ... in order of appearance: PUT, BINPUT, LONG_BINPUT and
// MEMOIZE all become BINPUT (index < 256) or LONG_BINPUT, and every GET
// form becomes BINGET or LONG_BINGET of the new index. Every other opcode
// is copied byte for byte. memoEnd is memoStart plus the number of memo
// writes, what mmappickle stores in the entry's trailer.
//
// Unlike mmappickle's own writer, which drops the memo writes nothing reads,
// renumberMemo keeps every one: it copies values such a writer already
// cleaned up. Errors (a *FormatError at fileOff plus the position in raw)
// report invalid opcodes, PROTO, FRAME or STOP, which cannot appear inside a
// value, and reads of a memo index not written before.
func renumberMemo(raw []byte, fileOff int64, memoStart int64) (out []byte, memoEnd int64, err error) {
	if memoStart < 0 {
		return nil, 0, errors.New("negative memo start")
	}
	src := &source{data: raw, size: int64(len(raw))}
	sc := src.scanner(0, src.size)
	out = make([]byte, 0, len(raw)+8)
	renum := map[int64]int64{} // old index -> new index
	next := int64(memoStart)
	for !sc.done() {
		o, err := sc.next()
		if err != nil {
			return nil, 0, shiftErr(err, fileOff)
		}
		switch o.Code {
		case opProto, opFrame, opStop:
			return nil, 0, formatErr(fileOff+o.Off, "opcode 0x%02x is not allowed inside a value", o.Code)
		case opPut, opBinPut, opLongBinPut, opMemoize:
			old := int64(len(renum))
			if o.Code != opMemoize {
				if old, err = memoIndex(src, o); err != nil {
					return nil, 0, shiftErr(err, fileOff)
				}
			}
			if next >= math.MaxInt32 {
				return nil, 0, formatErr(fileOff+o.Off, "memo index exceeds %d", math.MaxInt32)
			}
			renum[old] = next
			out = appendMemoOp(out, opBinPut, opLongBinPut, next)
			next++
		case opGet, opBinGet, opLongBinGet:
			old, err := memoIndex(src, o)
			if err != nil {
				return nil, 0, shiftErr(err, fileOff)
			}
			i, ok := renum[old]
			if !ok {
				return nil, 0, formatErr(fileOff+o.Off, "memo index %d is read before it is written", old)
			}
			out = appendMemoOp(out, opBinGet, opLongBinGet, i)
		default:
			out = append(out, raw[o.Off:o.End]...)
		}
	}
	return out, next, nil
}

// memoIndex returns the index a GET or PUT opcode names.
func memoIndex(src *source, o op) (int64, error) {
	if opArgs[o.Code] != argLine {
		return o.Int, nil
	}
	b, err := src.readAt(o.PayloadOff, o.PayloadLen)
	if err != nil {
		return 0, err
	}
	v, ok := parseMemoLine(b)
	if !ok || !v.IsInt64() || v.Sign() < 0 {
		return 0, formatErr(o.Off, "bad memo index %q", b)
	}
	return v.Int64(), nil
}

// appendMemoOp appends the short form of a memo opcode for i < 256, else
// the long form with a 4-byte index.
func appendMemoOp(b []byte, short, long byte, i int64) []byte {
	if i < 256 {
		return append(b, short, byte(i))
	}
	return append(b, long, byte(i), byte(i>>8), byte(i>>16), byte(i>>24))
}

// shiftErr moves the offset of a *FormatError by delta.
func shiftErr(err error, delta int64) error {
	var fe *FormatError
	if errors.As(err, &fe) {
		c := *fe
		c.Offset += delta
		return &c
	}
	return err
}
