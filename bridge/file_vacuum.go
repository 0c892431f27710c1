package bridge

// Rewriting a file without its deleted entries (Vacuum), and repairing one
// torn by an interrupted write (Repair, File.Repair).

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"

	"mmpbridge/internal/atomicfile"
)

// Vacuum removes deleted entries, rewriting the file to a temporary file
// beside it and renaming it into place (so a crash leaves the old file).
// When the name is a symbolic link, its target is rewritten and the link
// kept. Array data is re-aligned to the File's alignment. Other processes
// must not have the file open, and arrays obtained before are invalid
// afterwards. The commit number becomes 0 (or 1 if it was 0), as mmappickle
// does. A File made by NewFile is rewritten in place instead, as
// mmappickle does: do not interrupt that.
func (mf *File) Vacuum() error {
	return mf.write(func(r *Reader) error {
		var tmp *os.File
		var out *atomicfile.File
		if mf.inPlace {
			f, err := atomicfile.Scratch(os.TempDir())
			if err != nil {
				return err
			}
			tmp = f
		} else {
			target, err := filepath.EvalSymlinks(mf.name)
			if err != nil {
				return err
			}
			perm := os.FileMode(0o644)
			if st, err := mf.f.Stat(); err == nil {
				perm = st.Mode().Perm()
			}
			if out, err = atomicfile.Create(target, perm); err != nil {
				return err
			}
			tmp = out.File
			// The umask does not apply: the file keeps its mode.
			tmp.Chmod(perm)
		}
		committed := false
		defer func() {
			switch {
			case committed:
			case out != nil:
				out.Close()
			default:
				tmp.Close()
			}
		}()
		commit := int32(0)
		if r.commit == 0 {
			commit = 1
		}
		w := &offsetWriter{f: tmp}
		w.write(header(commit))
		if mf.cfg.indexed() {
			w.write(pointerEntry(1))
			mf.whole = true // its index is written on Close
		}
		var done, total int64
		for _, e := range r.entries {
			if e.Live {
				total += e.Size
			}
		}
		if err := mf.cfg.report(0, total); err != nil {
			return err
		}
		for i, e := range r.entries {
			if !e.Live {
				continue
			}
			if mf.cfg.align > 1 {
				if info, err := r.info(i); err == nil && info.array != nil {
					first := info.array.(interface{ dataOffset() int64 }).dataOffset()
					w.write(paddingEntry(w.off+first-e.Offset, int64(mf.cfg.align), e.memoMax))
				}
			}
			// In pieces, so that progress moves through a big array.
			const piece = 64 << 20
			for off := int64(0); off < e.Size && w.err == nil; off += piece {
				n := min(piece, e.Size-off)
				w.copySparse(mf.f, e.Offset+off, n, nil) // holes stay holes
				done += n
				if err := mf.cfg.report(done, total); err != nil {
					return err
				}
			}
		}
		w.write(terminator)
		if w.err != nil {
			return w.err
		}
		if mf.inPlace {
			return mf.copyBack(tmp, w.off)
		}
		// Locked before it has its name: no other writer can get in
		// between.
		flock(tmp, lockExclusive)
		if err := out.Commit(true); err != nil {
			return err
		}
		committed = true
		nf := tmp
		mf.unlock()
		old := mf.f
		mf.f = nf
		old.Close()
		mf.stale = true
		return mf.refresh(false)
	})
}

// restoreTrailer completes an entry at off cut within the last two bytes of
// its trailer (the flag and the final POP), which can only have been
// NEWTRUE|POP, POP: it writes them back (the flag as POP, deleted, when it is
// gone) and returns how many; 0 when the entry is not cut that way.
func (mf *File) restoreTrailer(r *Reader, off, size int64) (int, error) {
	h, err := r.src.readAt(off, min(entryFrameHeader, size-off))
	if err != nil || len(h) < entryFrameHeader || h[0] != opFrame {
		return 0, nil
	}
	n := binary.LittleEndian.Uint64(h[1:])
	if n < entryMinFrame || n > uint64(size) {
		return 0, nil
	}
	end := off + entryFrameHeader + int64(n)
	missing := end - size
	if missing < 1 || missing > 2 {
		return 0, nil
	}
	t, err := r.src.readAt(end-entryTrailer, entryTrailer-missing)
	if err != nil || t[0] != opBinInt || t[5] != opPop || missing == 1 && t[6] != opNewTrue && t[6] != opPop {
		return 0, nil
	}
	fix := []byte{opPop, opPop}[:missing]
	if _, err := mf.f.WriteAt(fix, size); err != nil {
		return 0, err
	}
	return int(missing), nil
}

// copyBack replaces the file's contents with the n bytes of tmp, in place.
func (mf *File) copyBack(tmp *os.File, n int64) error {
	// Where tmp has a hole, the old bytes are punched out.
	w := &offsetWriter{f: mf.f, dirty: true}
	w.copySparse(tmp, 0, n, nil)
	if w.err != nil {
		return w.err
	}
	if err := mf.f.Truncate(n); err != nil {
		return err
	}
	if err := mf.f.Sync(); err != nil {
		return err
	}
	mf.stale = true
	return mf.refresh(false)
}

func (a *Array) dataOffset() int64 { return a.Offset }

func (m *Masked) dataOffset() int64 { return m.Data.Offset }

// RepairReport says what Repair found and did.
type RepairReport struct {
	Entries  int   // entries kept
	CutAt    int64 // offset the file was cut at (-1: nothing cut)
	CutBytes int64 // bytes removed
	// Restored is the number of bytes of the last entry's trailer put back
	// (1: its final POP; 2: its flag too, so the entry is kept deleted).
	Restored int
	Repaired bool // the terminator was rewritten
	Problem  string
}

// Repair repairs a file whose last write was interrupted: it keeps every
// complete entry, cuts the torn tail and restores the terminator. Only the
// entry that was being written is lost. As with mmappickle, a file cut by
// up to 12 bytes (the terminator and the last byte of the last entry) comes
// back whole; cut by 13, the last entry's flag is lost and it is kept
// deleted.
func (mf *File) Repair() (RepairReport, error) {
	rep := RepairReport{CutAt: -1}
	if !mf.writable {
		return rep, mf.wrap(ErrReadOnly)
	}
	mf.mu.Lock()
	defer mf.mu.Unlock()
	if err := mf.lock(lockExclusive); err != nil {
		return rep, mf.wrap(err)
	}
	defer mf.unlock()
	st, err := mf.f.Stat()
	if err != nil {
		return rep, mf.wrap(err)
	}
	size := st.Size()
	src := &source{ra: mf.f, size: size}
	h, err := src.readAt(0, min(headerSize, size))
	if err != nil {
		return rep, mf.wrap(err)
	}
	if _, err := parseHeader(h); err != nil {
		return rep, mf.wrap(err)
	}
	r := &Reader{src: src, cfg: mf.cfg}
	off := int64(headerSize)
	for off < size {
		if size-off == terminatorSize {
			if t, _ := src.readAt(off, terminatorSize); bytes.Equal(t, terminator) {
				break
			}
		}
		e, err := r.readEntry(off, size)
		if err != nil && rep.Restored == 0 {
			if n, rerr := mf.restoreTrailer(r, off, size); rerr != nil {
				return rep, mf.wrap(rerr)
			} else if n > 0 {
				rep.Restored, size = n, size+int64(n)
				r.src = &source{ra: mf.f, size: size}
				e, err = r.readEntry(off, size)
			}
		}
		if err != nil {
			rep.Problem = err.Error()
			break
		}
		rep.Entries++
		off = e.end()
	}
	if off+terminatorSize == size && rep.Problem == "" {
		return rep, nil // intact
	}
	rep.CutAt, rep.CutBytes, rep.Repaired = off, size-off, true
	mf.stale = true
	if err := mf.f.Truncate(off); err != nil {
		return rep, mf.wrap(err)
	}
	if _, err := mf.f.WriteAt(terminator, off); err != nil {
		return rep, mf.wrap(err)
	}
	if err := mf.f.Sync(); err != nil {
		return rep, mf.wrap(err)
	}
	return rep, mf.wrap(mf.refresh(false))
}
