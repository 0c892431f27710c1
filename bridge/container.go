package bridge

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Layout of the container (see doc.go).
const (
	headerSize       = 24
	commitNumberOff  = 18
	fileVersion      = 1
	terminatorSize   = 11
	entryFrameHeader = 9 // FRAME + uint64 length
	entryTrailer     = 8 // BININT <memo max> POP, then NEWTRUE|POP, POP
	maxKeyLen        = 255
	// entryMinFrame: SHORT_BINUNICODE, key length, one value byte, trailer.
	entryMinFrame = 2 + 1 + entryTrailer
)

var terminator = []byte{opFrame, 2, 0, 0, 0, 0, 0, 0, 0, opDict, opStop}

// header returns the 24-byte header for a commit number.
func header(commit int32) []byte {
	h := []byte{opProto, 4, opFrame, 13, 0, 0, 0, 0, 0, 0, 0,
		opBinInt, 0, 0, 0, 0, opPop,
		opBinInt, 0, 0, 0, 0, opPop,
		opMark}
	binary.LittleEndian.PutUint32(h[12:], fileVersion)
	binary.LittleEndian.PutUint32(h[commitNumberOff:], uint32(commit))
	return h
}

// parseHeader validates the 24-byte header and returns the commit number.
func parseHeader(h []byte) (int32, error) {
	if len(h) < headerSize {
		return 0, &FormatError{Offset: int64(len(h)), Msg: "file is shorter than the 24-byte header", Err: ErrNotMmappickle}
	}
	want := header(0)
	for i := range headerSize {
		if i >= commitNumberOff && i < commitNumberOff+4 {
			continue
		}
		if i >= 12 && i < 16 {
			continue
		}
		if h[i] != want[i] {
			return 0, &FormatError{Offset: int64(i), Msg: "bad header byte (want PROTO 4, FRAME 13, BININT version POP, BININT commit POP, MARK)", Err: ErrNotMmappickle}
		}
	}
	if v := binary.LittleEndian.Uint32(h[12:]); v != fileVersion {
		return 0, &FormatError{Offset: 12, Msg: fmt.Sprintf("unsupported mmappickle version %d", int32(v)), Err: ErrNotMmappickle}
	}
	return int32(binary.LittleEndian.Uint32(h[commitNumberOff:])), nil
}

// Entry is one key-value record of the file, live or dead.
type Entry struct {
	Key      string
	Offset   int64 // file offset of the entry's FRAME opcode
	Size     int64 // whole record, FRAME header included
	Live     bool
	memoMax  int32 // the memo max index stored in the trailer
	valueOff int64 // first byte of the value's pickle
	valueLen int64
}

// end is the file offset just past the entry.
func (e *Entry) end() int64 { return e.Offset + e.Size }

func (e *Entry) flagOffset() int64 { return e.end() - 2 }

// parseEntryHead validates an entry's frame header and key; head holds the
// first bytes of the entry (at least 11, up to 11+255). limit is the offset
// the entry must end at or before.
func parseEntryHead(head []byte, off, limit int64) (e Entry, keyLen int, err error) {
	if len(head) < entryFrameHeader+2 {
		return e, 0, &FormatError{Offset: off, Msg: "truncated entry header", Err: ErrTorn}
	}
	if head[0] != opFrame {
		return e, 0, formatErr(off, "expected an entry (FRAME opcode), found byte 0x%02x", head[0])
	}
	n := binary.LittleEndian.Uint64(head[1:9])
	if n < entryMinFrame || n > uint64(limit-off-entryFrameHeader) {
		if n >= entryMinFrame {
			return e, 0, &FormatError{Offset: off, Msg: fmt.Sprintf("entry frame of %d bytes runs past the end of the entries at offset %d", n, limit), Err: ErrTorn}
		}
		return e, 0, formatErr(off, "bad entry frame length %d", n)
	}
	if head[9] != opShortBinUni {
		return e, 0, formatErr(off+9, "entry does not start with its key (SHORT_BINUNICODE), found 0x%02x", head[9])
	}
	keyLen = int(head[10])
	e.Offset = off
	e.Size = int64(n) + entryFrameHeader
	e.valueOff = off + entryFrameHeader + 2 + int64(keyLen)
	e.valueLen = e.end() - entryTrailer - e.valueOff
	if e.valueLen < 1 {
		return e, 0, formatErr(off, "entry frame of %d bytes is too short for a %d-byte key and a value", n, keyLen)
	}
	return e, keyLen, nil
}

// parseEntryTrailer validates the 8 trailing bytes of an entry and fills
// memoMax and Live.
func parseEntryTrailer(e *Entry, t []byte) error {
	off := e.end() - entryTrailer
	if len(t) != entryTrailer || t[0] != opBinInt || t[5] != opPop || t[7] != opPop {
		return formatErr(off, "bad entry trailer (want BININT <memo> POP, NEWTRUE|POP, POP)")
	}
	switch t[6] {
	case opNewTrue:
		e.Live = true
	case opPop:
		e.Live = false
	default:
		return formatErr(off+6, "entry flag is 0x%02x, want NEWTRUE (live) or POP (deleted)", t[6])
	}
	e.memoMax = int32(binary.LittleEndian.Uint32(t[1:5]))
	if e.memoMax < 0 {
		return formatErr(off+1, "negative memo index %d", e.memoMax)
	}
	return nil
}

func validKey(k []byte) bool {
	return len(k) >= 1 && len(k) <= maxKeyLen && utf8.Valid(k)
}

// Building entries: the inverse of parseEntryHead and parseEntryTrailer,
// kept beside them.

func entryHead(key string, valueLen int64) []byte {
	h := make([]byte, entryFrameHeader, entryFrameHeader+2+len(key))
	h[0] = opFrame
	binary.LittleEndian.PutUint64(h[1:], uint64(2+int64(len(key))+valueLen+entryTrailer))
	h = append(h, opShortBinUni, byte(len(key)))
	return append(h, key...)
}

func entryTail(memo int32, live bool) []byte {
	t := []byte{opBinInt, 0, 0, 0, 0, opPop, opPop, opPop}
	binary.LittleEndian.PutUint32(t[1:], uint32(memo))
	if live {
		t[6] = opNewTrue
	}
	return t
}

// paddingEntry returns a deleted entry that moves dataOff to a multiple of
// align, or nil when it already is one. The smallest entry is 20 bytes.
func paddingEntry(dataOff, align int64, memo int32) []byte {
	pad := (align - dataOff%align) % align
	if pad == 0 {
		return nil
	}
	const minPad = entryFrameHeader + 2 + 1 + entryTrailer
	for pad < minPad {
		pad += align
	}
	v := pad - (entryFrameHeader + 2 + entryTrailer) // value bytes
	var value []byte
	switch {
	case v == 1:
		value = []byte{opNone}
	case v <= 257:
		value = append([]byte{opShortBinBytes, byte(v - 2)}, make([]byte, v-2)...)
	default:
		value = append(bytesOpHeader(v-5), make([]byte, v-5)...)
	}
	b := entryHead("", int64(len(value)))
	b = append(b, value...)
	return append(b, entryTail(memo, false)...)
}
