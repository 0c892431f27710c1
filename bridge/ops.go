package bridge

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Pickle opcodes (protocols 0 to 5).
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opFloat          = 'F'
	opInt            = 'I'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opLong           = 'L'
	opBinInt2        = 'M'
	opNone           = 'N'
	opPersID         = 'P'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opString         = 'S'
	opBinString      = 'T'
	opShortBinString = 'U'
	opUnicode        = 'V'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opGet            = 'g'
	opBinGet         = 'h'
	opInst           = 'i'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opObj            = 'o'
	opPut            = 'p'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinFloat       = 'G'
	opProto          = 0x80
	opNewObj         = 0x81
	opExt1           = 0x82
	opExt2           = 0x83
	opExt4           = 0x84
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opNewTrue        = 0x88
	opNewFalse       = 0x89
	opLong1          = 0x8a
	opLong4          = 0x8b
	opBinBytes       = 'B'
	opShortBinBytes  = 'C'
	opShortBinUni    = 0x8c
	opBinUnicode8    = 0x8d
	opBinBytes8      = 0x8e
	opEmptySet       = 0x8f
	opAddItems       = 0x90
	opFrozenSet      = 0x91
	opNewObjEx       = 0x92
	opStackGlobal    = 0x93
	opMemoize        = 0x94
	opFrame          = 0x95
	opByteArray8     = 0x96
	opNextBuffer     = 0x97
	opReadOnlyBuffer = 0x98
)

// argKind says how an opcode's argument is laid out after the opcode byte.
type argKind uint8

const (
	argNone    argKind = iota
	argU1              // 1-byte unsigned
	argU2              // 2-byte unsigned
	argI4              // 4-byte signed
	argU4              // 4-byte unsigned
	argU8              // 8-byte unsigned
	argF8              // 8-byte big-endian float
	argLen1            // 1-byte length, then payload
	argLen4            // 4-byte unsigned length, then payload
	argLen4S           // 4-byte signed length, then payload (LONG4)
	argLen8            // 8-byte length, then payload
	argLine            // text up to '\n'
	argTwoLine         // two lines (GLOBAL, INST)
	argInvalid
)

var opArgs [256]argKind

func init() {
	for i := range opArgs {
		opArgs[i] = argInvalid
	}
	for _, c := range []byte{opMark, opStop, opPop, opPopMark, opDup, opNone, opBinPersID,
		opReduce, opAppend, opBuild, opDict, opEmptyDict, opAppends, opList, opEmptyList,
		opObj, opSetItem, opTuple, opEmptyTuple, opSetItems, opNewObj, opTuple1, opTuple2,
		opTuple3, opNewTrue, opNewFalse, opEmptySet, opAddItems, opFrozenSet, opNewObjEx,
		opStackGlobal, opMemoize, opNextBuffer, opReadOnlyBuffer} {
		opArgs[c] = argNone
	}
	for _, c := range []byte{opBinInt1, opBinGet, opBinPut, opProto, opExt1} {
		opArgs[c] = argU1
	}
	opArgs[opBinInt2] = argU2
	opArgs[opExt2] = argU2
	opArgs[opBinInt] = argI4
	opArgs[opLongBinGet] = argU4
	opArgs[opLongBinPut] = argU4
	opArgs[opExt4] = argI4
	opArgs[opFrame] = argU8
	opArgs[opBinFloat] = argF8
	for _, c := range []byte{opShortBinUni, opShortBinBytes, opShortBinString, opLong1} {
		opArgs[c] = argLen1
	}
	for _, c := range []byte{opBinUnicode, opBinBytes, opBinString} {
		opArgs[c] = argLen4
	}
	opArgs[opLong4] = argLen4S
	for _, c := range []byte{opBinUnicode8, opBinBytes8, opByteArray8} {
		opArgs[c] = argLen8
	}
	for _, c := range []byte{opInt, opLong, opFloat, opString, opUnicode, opPersID, opGet, opPut} {
		opArgs[c] = argLine
	}
	opArgs[opGlobal] = argTwoLine
	opArgs[opInst] = argTwoLine
}

// maxLine bounds the text argument of protocol-0 opcodes (a protocol-0
// pickle writes a str as one UNICODE line).
const maxLine = 1 << 26

// op is one decoded opcode. Payload-bearing opcodes do not carry their
// payload: PayloadOff/PayloadLen locate it in the file, so that scanning an
// array entry never reads the array's bytes.
type op struct {
	Code       byte
	Off        int64 // file offset of the opcode byte
	End        int64 // file offset just past the opcode and its argument
	Int        int64 // integer argument (argU1..argU8, argI4)
	Float      float64
	PayloadOff int64 // payload (argLen*, argLine: the line without '\n')
	PayloadLen int64
	Payload2   int64 // argTwoLine: offset of the second line; PayloadLen2 its length
	Payload2L  int64
}

// opScanner decodes opcodes from the byte range [pos, end) of a file. It
// reads through a small window (or straight from a mapping), never
// allocating more than the window whatever lengths the input claims.
type opScanner struct {
	src    *source
	pos    int64
	end    int64
	window []byte // bytes [wOff, wOff+len(window))
	wOff   int64
}

// source gives access to a file's bytes: a whole mapping, or an io.ReaderAt.
type source struct {
	data []byte // the whole file when mapped (or fed as bytes)
	ra   io.ReaderAt
	size int64
}

func newSource(ra io.ReaderAt, size int64) *source {
	if b, ok := ra.(interface{ Bytes() []byte }); ok {
		if d := b.Bytes(); int64(len(d)) == size {
			return &source{data: d, ra: ra, size: size}
		}
	}
	return &source{ra: ra, size: size}
}

// readAt returns n bytes at off, bounds-checked against the file size. The
// slice aliases the mapping when there is one.
func (s *source) readAt(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > s.size || n > s.size-off {
		return nil, formatErr(off, "%d bytes at offset %d run past the end of the file (size %d)", n, off, s.size)
	}
	if s.data != nil {
		return s.data[off : off+n : off+n], nil
	}
	buf := make([]byte, n)
	if got, err := s.ra.ReadAt(buf, off); int64(got) != n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF // the file shrank since it was sized
		}
		return nil, fmt.Errorf("reading %d bytes at offset %d: %w", n, off, err)
	}
	return buf, nil
}

const scanWindow = 4096

func (s *source) scanner(start, end int64) *opScanner {
	return &opScanner{src: s, pos: start, end: end}
}

// need returns the n bytes at sc.pos, which must lie before sc.end.
func (sc *opScanner) need(n int64) ([]byte, error) {
	if n > sc.end-sc.pos {
		return nil, formatErr(sc.pos, "opcode argument runs past the end of the value (%d bytes needed, %d left)", n, sc.end-sc.pos)
	}
	if sc.src.data != nil {
		return sc.src.data[sc.pos : sc.pos+n], nil
	}
	if sc.pos < sc.wOff || sc.pos+n > sc.wOff+int64(len(sc.window)) {
		w := max(n, scanWindow)
		w = min(w, sc.end-sc.pos)
		if cap(sc.window) < int(w) {
			sc.window = make([]byte, w)
		}
		sc.window = sc.window[:w]
		if got, err := sc.src.ra.ReadAt(sc.window, sc.pos); got != len(sc.window) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF // the file shrank since it was sized
			}
			return nil, fmt.Errorf("reading %d bytes at offset %d: %w", len(sc.window), sc.pos, err)
		}
		sc.wOff = sc.pos
	}
	i := sc.pos - sc.wOff
	return sc.window[i : i+n], nil
}

func (sc *opScanner) done() bool { return sc.pos >= sc.end }

// next decodes the opcode at sc.pos and advances past it.
func (sc *opScanner) next() (op, error) {
	var o op
	err := sc.nextInto(&o)
	return o, err
}

// nextInto is next, into *o (an op is large: the machine's loop reuses one).
func (sc *opScanner) nextInto(o *op) error {
	*o = op{}
	o.Off = sc.pos
	b, err := sc.need(1)
	if err != nil {
		return err
	}
	o.Code = b[0]
	sc.pos++
	switch opArgs[o.Code] {
	case argInvalid:
		sc.pos--
		return formatErr(o.Off, "invalid pickle opcode 0x%02x", o.Code)
	case argNone:
	case argU1:
		if b, err = sc.need(1); err == nil {
			o.Int = int64(b[0])
			sc.pos++
		}
	case argU2:
		if b, err = sc.need(2); err == nil {
			o.Int = int64(binary.LittleEndian.Uint16(b))
			sc.pos += 2
		}
	case argI4:
		if b, err = sc.need(4); err == nil {
			o.Int = int64(int32(binary.LittleEndian.Uint32(b)))
			sc.pos += 4
		}
	case argU4:
		if b, err = sc.need(4); err == nil {
			o.Int = int64(binary.LittleEndian.Uint32(b))
			sc.pos += 4
		}
	case argU8:
		if b, err = sc.need(8); err == nil {
			u := binary.LittleEndian.Uint64(b)
			if u > math.MaxInt64 {
				return formatErr(o.Off, "opcode 0x%02x: argument %d is too large", o.Code, u)
			}
			o.Int = int64(u)
			sc.pos += 8
		}
	case argF8:
		if b, err = sc.need(8); err == nil {
			o.Float = math.Float64frombits(binary.BigEndian.Uint64(b))
			sc.pos += 8
		}
	case argLen1, argLen4, argLen4S, argLen8:
		var n int64
		switch opArgs[o.Code] {
		case argLen1:
			if b, err = sc.need(1); err == nil {
				n = int64(b[0])
				sc.pos++
			}
		case argLen4:
			if b, err = sc.need(4); err == nil {
				n = int64(binary.LittleEndian.Uint32(b))
				sc.pos += 4
			}
		case argLen4S:
			if b, err = sc.need(4); err == nil {
				n = int64(int32(binary.LittleEndian.Uint32(b)))
				sc.pos += 4
				if n < 0 {
					return formatErr(o.Off, "LONG4 with negative length %d", n)
				}
			}
		case argLen8:
			if b, err = sc.need(8); err == nil {
				u := binary.LittleEndian.Uint64(b)
				if u > math.MaxInt64 {
					return formatErr(o.Off, "opcode 0x%02x claims %d bytes", o.Code, u)
				}
				n = int64(u)
				sc.pos += 8
			}
		}
		if err == nil {
			if n > sc.end-sc.pos {
				return formatErr(o.Off, "opcode 0x%02x claims %d bytes but only %d remain in the value", o.Code, n, sc.end-sc.pos)
			}
			o.PayloadOff, o.PayloadLen = sc.pos, n
			sc.pos += n
		}
	case argLine, argTwoLine:
		o.PayloadOff, o.PayloadLen, err = sc.line()
		if err == nil && opArgs[o.Code] == argTwoLine {
			o.Payload2, o.Payload2L, err = sc.line()
		}
	}
	if err != nil {
		return err
	}
	o.End = sc.pos
	return nil
}

// line consumes a '\n'-terminated line of at most maxLine bytes.
func (sc *opScanner) line() (off, n int64, err error) {
	off = sc.pos
	for {
		if sc.pos-off > maxLine {
			return 0, 0, formatErr(off, "text argument longer than %d bytes", maxLine)
		}
		if sc.pos >= sc.end {
			_, err := sc.need(1)
			return 0, 0, err
		}
		// Search what the window (or the mapping) holds from pos on.
		b, err := sc.need(min(scanWindow, sc.end-sc.pos))
		if err != nil {
			return 0, 0, err
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			sc.pos += int64(i) + 1
			return off, sc.pos - 1 - off, nil
		}
		sc.pos += int64(len(b))
	}
}

// payload returns an opcode's payload bytes, refusing payloads over limit.
func (s *source) payload(o op, limit int64) ([]byte, error) {
	if o.PayloadLen > limit {
		return nil, &FormatError{Offset: o.Off, Msg: fmt.Sprintf("a %d-byte string exceeds the limit of %d bytes", o.PayloadLen, limit), Err: ErrLimit}
	}
	return s.readAt(o.PayloadOff, o.PayloadLen)
}
