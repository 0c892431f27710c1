package bridge

// Reserved arrays (mmappickle's EmptyNDArray): appended without data,
// filled through a mapping or WriteAt, then committed.

import (
	"errors"
	"fmt"
	"os"

	mmap "github.com/edsrzf/mmap-go"
)

// Slot is an array reserved in the file (like mmappickle's EmptyNDArray):
// its bytes are filled through WriteAt or Bytes, then Commit makes the key
// live. Until then the entry is deleted, so a crash loses only the slot.
type Slot struct {
	mf     *File
	entry  Entry
	Offset int64 // file offset of the array data
	NBytes int64
	Header ArrayHeader
	mapped mmap.MMap
	done   bool
}

// Reserve appends an array of the given dtype and shape without its data
// (the file gets a hole: no memory and, on most file systems, no disk used
// until written).
func (mf *File) Reserve(key string, h ArrayHeader) (*Slot, error) {
	if mf.cfg.profile == Mmappickle && h.isFortranFlag() {
		return nil, mf.wrap(fmt.Errorf("key %q: the mmappickle profile stores C-order data", key))
	}
	var s *Slot
	err := mf.write(func(r *Reader) error {
		e, err := mf.appendValue(r, key, arrayBuilder(mf.cfg.profile, h, nil), false)
		if err != nil {
			return err
		}
		n, _ := h.NBytes()
		a, err := standaloneArray(&source{ra: mf.f, size: e.end() + terminatorSize}, e.valueOff, e.valueLen, mf.cfg.limits)
		if err != nil {
			return err
		}
		arr, ok := a.(*Array)
		if !ok || arr.NBytes != n {
			return fmt.Errorf("key %q: reserved entry does not parse back as the array", key)
		}
		s = &Slot{mf: mf, entry: e, Offset: arr.Offset, NBytes: n, Header: h}
		return nil
	})
	return s, err
}

// WriteAt writes p at offset off of the array's data.
func (s *Slot) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > s.NBytes || int64(len(p)) > s.NBytes-off {
		return 0, fmt.Errorf("slot write of %d bytes at %d outside the array's %d bytes", len(p), off, s.NBytes)
	}
	return s.mf.f.WriteAt(p, s.Offset+off)
}

// Bytes maps the slot's data writable. The mapping is released by Commit.
func (s *Slot) Bytes() ([]byte, error) {
	if s.mapped == nil {
		if s.NBytes == 0 {
			return []byte{}, nil
		}
		page := int64(os.Getpagesize())
		start := s.Offset / page * page
		m, err := mmap.MapRegion(s.mf.f, int(s.Offset+s.NBytes-start), mmap.RDWR, 0, start)
		if err != nil {
			return nil, fmt.Errorf("mmap slot: %w", err)
		}
		s.mapped = m
	}
	d := s.Offset % int64(os.Getpagesize())
	return s.mapped[d : d+s.NBytes : d+s.NBytes], nil
}

// Abort releases a slot that will not be committed: its mapping is unmapped
// and the entry stays deleted (Vacuum reclaims it).
func (s *Slot) Abort() error {
	if s.done {
		return errors.New("slot already committed or aborted")
	}
	s.done = true
	if s.mapped != nil {
		err := s.mapped.Unmap()
		s.mapped = nil
		return err
	}
	return nil
}

// Commit makes the reserved key live (replacing a previous value of the
// key) and releases the slot's mapping.
func (s *Slot) Commit() error {
	if s.done {
		return errors.New("slot already committed")
	}
	if s.mapped != nil {
		if err := s.mapped.Flush(); err != nil {
			return err
		}
		if err := s.mapped.Unmap(); err != nil {
			return err
		}
		s.mapped = nil
	}
	return s.mf.write(func(r *Reader) error {
		for i := len(r.entries) - 1; i >= 0; i-- {
			if r.entries[i].Offset == s.entry.Offset {
				s.done = true
				return s.mf.commitEntry(r, i)
			}
		}
		return fmt.Errorf("key %q: reserved entry at offset %d is gone (vacuumed?)", s.entry.Key, s.entry.Offset)
	})
}
