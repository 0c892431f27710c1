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
// writes, what mmappickle stores in the entry's trailer. memoBase is the
// memo's length before the value where it is stored (MEMOIZE writes at the
// file-wide length): the entry's for a value read from a file, 0 for a
// pickle on its own.
//
// Unlike mmappickle's own writer, which drops the memo writes nothing reads,
// renumberMemo keeps every one: it copies values such a writer already
// cleaned up. Errors (a *FormatError at fileOff plus the position in raw)
// report invalid opcodes, PROTO, FRAME or STOP, which cannot appear inside a
// value, and reads of a memo index not written before.
func renumberMemo(raw []byte, fileOff, memoBase, memoStart int64) (out []byte, memoEnd int64, err error) {
	if memoStart < 0 || memoBase < 0 {
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
			old := memoBase + int64(len(renum))
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

// unframe turns a complete pickle (PROTO, opcodes, STOP, as pickle.dumps
// gives it at protocol 2 to 5) into the opcodes of a value as an entry
// stores them: PROTO, every FRAME and the final STOP dropped. Out-of-band
// buffers (NEXT_BUFFER) cannot be stored, nor globals of a protocol 2
// pickle: pickle.dumps names them the Python 2 way there (__builtin__.set),
// which pickle.load maps back only in a protocol 2 stream, not in a file.
func unframe(p []byte) ([]byte, error) {
	src := &source{data: p, size: int64(len(p))}
	sc := src.scanner(0, src.size)
	out := make([]byte, 0, len(p))
	first := true
	proto := int64(0)
	for !sc.done() {
		o, err := sc.next()
		if err != nil {
			return nil, err
		}
		switch {
		case first && o.Code == opProto:
			if o.Int < 2 || o.Int > 5 {
				return nil, formatErr(o.Off, "pickle protocol %d: want 2 to 5", o.Int)
			}
			proto = o.Int
		case first:
			return nil, formatErr(o.Off, "a pickle of protocol 2 to 5 starts with PROTO, not opcode 0x%02x", o.Code)
		case o.Code == opProto:
			return nil, formatErr(o.Off, "PROTO inside the pickle")
		case o.Code == opFrame:
		case proto < 3 && (o.Code == opGlobal || o.Code == opInst):
			return nil, formatErr(o.Off, "a protocol 2 pickle names its globals as Python 2 did: pickle with protocol 3 or later")
		case o.Code == opNextBuffer:
			return nil, formatErr(o.Off, "NEXT_BUFFER: a pickle with out-of-band buffers cannot be stored")
		case o.Code == opStop:
			if o.End != src.size {
				return nil, formatErr(o.End, "%d bytes after the pickle's STOP", src.size-o.End)
			}
			return out, nil
		default:
			out = append(out, p[o.Off:o.End]...)
		}
		first = false
	}
	return nil, formatErr(src.size, "the pickle ends without STOP")
}

// framed turns a value's opcodes, memo numbered from 0, into a complete
// pickle: PROTO 4, the opcodes, STOP.
func framed(ops []byte) []byte {
	out := make([]byte, 0, len(ops)+3)
	out = append(out, opProto, 4)
	out = append(out, ops...)
	return append(out, opStop)
}
