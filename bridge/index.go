package bridge

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// The index: a prefetch plan for remote readers.
//
// A file's entries can only be walked one after the other, which over HTTP
// is a round trip per large array. Files the bridge creates (and rewrites
// by Vacuum) therefore start, right after the header, with a small deleted
// entry of fixed size, the pointer, and on Close get a deleted entry before
// the terminator, the index, listing the byte ranges a reader needs to
// list the file: every entry but the data of its large arrays. Both are
// deleted entries whose values are bytes objects, which pickle.load,
// mmappickle and every reader skip as they skip alignment padding.
//
// pointer value (SHORT_BINBYTES of 40 bytes):
//
//	"MMPIDXP1" | commit int32 | entries uint32 | index payload offset int64 |
//	index payload length int64 | CRC-32 of the 32 bytes before | 4 zero bytes
//
// index value (bytes): "MMPIDX01", then uvarint count, then count pairs of
// uvarints (start - end of the previous range, length).
//
// The pointer records the commit number and entry count when the index was
// written; any later edit (by any writer) changes one of them, and the
// bridge writes a new index on its next Close. The index is only ever a
// plan of what to fetch: readers still run every byte through the pickle
// machine, so a stale or lying index can cost requests, never change what
// is read. Files written with alignment 1 (mmappickle's exact bytes) carry
// none.

const (
	pointerMagic   = "MMPIDXP1"
	indexMagic     = "MMPIDX01"
	pointerPayload = 40
	// pointerSize is the whole pointer entry.
	pointerSize = entryFrameHeader + 2 + 2 + pointerPayload + entryTrailer
	// pointerPayloadOff is where its payload starts in the file.
	pointerPayloadOff = headerSize + entryFrameHeader + 2 + 2
	// bigPayload: array data at least this long is left out of the plan.
	bigPayload = 64 << 10
	// maxIndexPayload bounds what a reader fetches of an index.
	maxIndexPayload = 16 << 20
)

// pointerEntry is the pointer entry with an empty (invalid) payload.
func pointerEntry(memo int32) []byte {
	value := append([]byte{opShortBinBytes, pointerPayload}, make([]byte, pointerPayload)...)
	b := entryHead("", int64(len(value)))
	b = append(b, value...)
	return append(b, entryTail(memo, false)...)
}

type indexPointer struct {
	commit  int32
	entries uint32
	off, n  int64
}

func (p indexPointer) payload() []byte {
	b := make([]byte, pointerPayload)
	copy(b, pointerMagic)
	binary.LittleEndian.PutUint32(b[8:], uint32(p.commit))
	binary.LittleEndian.PutUint32(b[12:], p.entries)
	binary.LittleEndian.PutUint64(b[16:], uint64(p.off))
	binary.LittleEndian.PutUint64(b[24:], uint64(p.n))
	binary.LittleEndian.PutUint32(b[32:], crc32.ChecksumIEEE(b[:32]))
	return b
}

// parsePointer reads the pointer entry from the first bytes of a file; ok
// is false when there is none (or it is not filled in).
func parsePointer(b []byte) (p indexPointer, ok bool) {
	if len(b) < headerSize+pointerSize {
		return p, false
	}
	want := pointerEntry(0)
	e := b[headerSize : headerSize+pointerSize]
	// The frame, key and bytes opcode exactly as written; the trailer's
	// memo value may differ.
	if string(e[:entryFrameHeader+4]) != string(want[:entryFrameHeader+4]) {
		return p, false
	}
	pl := e[entryFrameHeader+4 : entryFrameHeader+4+pointerPayload]
	if string(pl[:8]) != pointerMagic || binary.LittleEndian.Uint32(pl[32:]) != crc32.ChecksumIEEE(pl[:32]) {
		return p, false
	}
	p.commit = int32(binary.LittleEndian.Uint32(pl[8:]))
	p.entries = binary.LittleEndian.Uint32(pl[12:])
	p.off = int64(binary.LittleEndian.Uint64(pl[16:]))
	p.n = int64(binary.LittleEndian.Uint64(pl[24:]))
	if p.off < 0 || p.n < 0 || p.n > maxIndexPayload {
		return p, false
	}
	return p, true
}

// span is a byte range [off, off+n).
type span struct{ off, n int64 }

func encodeIndex(spans []span) []byte {
	b := []byte(indexMagic)
	b = binary.AppendUvarint(b, uint64(len(spans)))
	var end int64
	for _, s := range spans {
		b = binary.AppendUvarint(b, uint64(s.off-end))
		b = binary.AppendUvarint(b, uint64(s.n))
		end = s.off + s.n
	}
	return b
}

var errBadIndex = errors.New("not an index")

// decodeIndex parses an index payload, each range checked against size.
func decodeIndex(b []byte, size int64) ([]span, error) {
	if len(b) < len(indexMagic) || string(b[:len(indexMagic)]) != indexMagic {
		return nil, errBadIndex
	}
	b = b[len(indexMagic):]
	count, k := binary.Uvarint(b)
	if k <= 0 || count > uint64(len(b)) {
		return nil, errBadIndex
	}
	b = b[k:]
	spans := make([]span, 0, count)
	var end int64
	for range count {
		gap, k1 := binary.Uvarint(b)
		if k1 <= 0 {
			return nil, errBadIndex
		}
		n, k2 := binary.Uvarint(b[k1:])
		if k2 <= 0 || gap > uint64(size) || n > uint64(size) {
			return nil, errBadIndex
		}
		b = b[k1+k2:]
		off := end + int64(gap)
		if off > size || int64(n) > size-off {
			return nil, errBadIndex
		}
		spans = append(spans, span{off, int64(n)})
		end = off + int64(n)
	}
	return spans, nil
}

// hasPointer tells whether the file's first entry is an index pointer.
func (r *Reader) hasPointer() bool {
	if len(r.entries) == 0 || r.entries[0].Offset != headerSize || r.entries[0].Live || r.entries[0].Size != pointerSize {
		return false
	}
	b, err := r.src.readAt(headerSize, entryFrameHeader+4)
	want := pointerEntry(0)
	return err == nil && string(b) == string(want[:entryFrameHeader+4])
}

// isIndexEntry tells a deleted, keyless entry holding an index.
func (r *Reader) isIndexEntry(e Entry) bool {
	if e.Live || e.Key != "" || e.valueLen < int64(len(indexMagic))+2 {
		return false
	}
	b, err := r.src.readAt(e.valueOff, min(e.valueLen, 9+int64(len(indexMagic))))
	if err != nil || len(b) < 2 {
		return false
	}
	skip := map[byte]int{opShortBinBytes: 2, opBinBytes: 5, opBinBytes8: 9}[b[0]]
	return skip > 0 && len(b) >= skip+len(indexMagic) && string(b[skip:skip+len(indexMagic)]) == indexMagic
}

// indexSpans plans the ranges a reader needs: the whole of every entry
// after the pointer, but for the data of large arrays.
func (r *Reader) indexSpans() []span {
	var spans []span
	add := func(off, end int64) {
		if end <= off {
			return
		}
		if k := len(spans); k > 0 && off <= spans[k-1].off+spans[k-1].n+bigPayload {
			spans[k-1].n = max(spans[k-1].n, end-spans[k-1].off)
			return
		}
		spans = append(spans, span{off, end - off})
	}
	for i := 1; i < len(r.entries); i++ {
		e := r.entries[i]
		var holes [][2]int64
		if info, err := r.info(i); err == nil && info.array != nil {
			for _, a := range arraysOf(info.array) {
				if a.NBytes >= bigPayload {
					holes = append(holes, [2]int64{a.Offset, a.Offset + a.NBytes})
				}
			}
		}
		at := e.Offset
		for _, h := range holes {
			if h[0] >= at && h[1] <= e.end() {
				add(at, h[0])
				at = h[1]
			}
		}
		add(at, e.end())
	}
	return spans
}

func arraysOf(v any) []*Array {
	switch v := v.(type) {
	case *Array:
		return []*Array{v}
	case *Masked:
		return []*Array{v.Data, v.Mask}
	}
	return nil
}

// writeIndex appends a fresh index and points the pointer at it, unless
// the file has no pointer or its index is current. An index entry is a
// deleted entry: written before the terminator as any append, then the
// pointer's payload rewritten in place (a torn pointer fails its CRC and
// is ignored).
func (mf *File) writeIndex() error {
	return mf.write(func(r *Reader) error {
		if !r.hasPointer() {
			return nil
		}
		if b, err := r.src.readAt(0, headerSize+pointerSize); err == nil {
			if p, ok := parsePointer(b); ok && p.commit == r.commit && int(p.entries) == len(r.entries) {
				return nil // current
			}
		}
		if err := r.analyze(); err != nil {
			return nil // a file the machine refuses gets no plan
		}
		payload := encodeIndex(r.indexSpans())
		value := append(bytesOpHeader(int64(len(payload))), payload...)
		off := r.tail
		entry := append(entryHead("", int64(len(value))), value...)
		entry = append(entry, entryTail(int32(min(r.nextMemo(), 1<<31-1)), false)...)
		w := &offsetWriter{f: mf.f, off: off}
		w.write(entry)
		w.write(terminator)
		mf.stale = true
		if w.err != nil {
			if terr := mf.f.Truncate(off); terr == nil {
				mf.f.WriteAt(terminator, off)
			}
			return w.err
		}
		p := indexPointer{commit: r.commit, entries: uint32(len(r.entries) + 1),
			off: off + entryFrameHeader + 2 + int64(len(value)-len(payload)), n: int64(len(payload))}
		_, err := mf.f.WriteAt(p.payload(), pointerPayloadOff)
		return err
	})
}
