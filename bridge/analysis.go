package bridge

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// This file runs the machine over every entry of a file in file order,
// deleted ones included, as pickle.load does, with the memo shared by the
// whole file. It records what each entry holds (an array, a masked array,
// another value) and refuses the whole file when pickle.load of it would
// not give the dict its entries describe: an entry reads or overwrites a
// memo slot another entry wrote (decoded alone it would show another
// value), breaks the structure (a STOP inside a value ends pickle.load
// there), makes pickle.load raise (or do something this package does not
// model, such as changing an array after building it), or stops early at
// one of this package's limits (its later memo writes would be unknown, and
// with them what the entries after it read).
// Values made by globals outside the allow-list are not refused: they are
// shown undecoded.

// memoOwners records which entry wrote each memo slot. Files written by
// mmappickle and by this package give each entry a range of slots above
// those of the entries before it, so the record is a list of runs appended
// at the top; slots written out of that order go to a map.
type memoOwners struct {
	runs    []memoRun
	top     int64 // one past the highest slot in runs
	extra   map[int64]int32
	count   int64   // distinct slots written: the memo's length
	offsets []int64 // entry number -> entry offset, for messages
}

type memoRun struct {
	lo, hi int64
	entry  int32
}

func (o *memoOwners) owner(i int64) (int32, bool) {
	if i < o.top {
		k := sort.Search(len(o.runs), func(k int) bool { return o.runs[k].hi > i })
		if k < len(o.runs) && o.runs[k].lo <= i {
			return o.runs[k].entry, true
		}
		if e, ok := o.extra[i]; ok {
			return e, true
		}
	}
	return 0, false
}

// write records that entry e wrote slot i (the caller checked that no
// other entry owns it).
func (o *memoOwners) write(i int64, e int32) {
	if i >= o.top {
		if n := len(o.runs); n > 0 && o.runs[n-1].entry == e && o.runs[n-1].hi == i {
			o.runs[n-1].hi++
		} else {
			o.runs = append(o.runs, memoRun{i, i + 1, e})
		}
		o.top = i + 1
		o.count++
		return
	}
	if _, ok := o.owner(i); ok {
		return
	}
	if o.extra == nil {
		o.extra = map[int64]int32{}
	}
	o.extra[i] = e
	o.count++
}

func (o *memoOwners) entryOffset(e int32) int64 {
	if int(e) < len(o.offsets) {
		return o.offsets[e]
	}
	return -1
}

// entryInfo is what the analysis found in one entry.
type entryInfo struct {
	memoLen int64 // the memo's length before the value: MEMOIZE's base
	kind    Kind
	array   any // *Array or *Masked
}

// analysis is the state of a file's analysis: entries [0, len(infos)) done.
type analysis struct {
	owners memoOwners
	infos  []entryInfo
	err    error // the file is refused: entries share memo slots
	m      *machine
}

// ErrSharedMemo: an entry reads or overwrites a memo slot another entry
// wrote. pickle.load runs the whole file with one memo, so it would give
// that entry another value than the entry shows alone; such a file is
// refused. mmappickle 1.0.1 and this package never write one.
var ErrSharedMemo = errors.New("entries share memo slots")

// snapshot returns a copy of r that shares nothing r changes when entries
// are appended, deleted or analysed (the source is never changed in place).
func (r *Reader) snapshot() *Reader {
	c := *r
	c.entries = slices.Clone(r.entries)
	c.index = maps.Clone(r.index)
	c.keys = slices.Clone(r.keys)
	c.shadowed = slices.Clone(r.shadowed)
	o := r.an.owners
	o.runs, o.extra, o.offsets = slices.Clone(o.runs), maps.Clone(o.extra), slices.Clone(o.offsets)
	c.an = analysis{owners: o, infos: slices.Clone(r.an.infos), err: r.an.err}
	return &c
}

// analyze runs the machine over the entries not analysed yet.
func (r *Reader) analyze() error {
	a := &r.an
	if a.err != nil {
		return a.err
	}
	if len(a.infos) == len(r.entries) {
		return nil
	}
	if a.m == nil {
		a.m = newMachine(r.src, r.cfg.limits)
	}
	m := a.m
	m.src = r.src
	m.owners = &a.owners
	a.infos = slices.Grow(a.infos, len(r.entries)-len(a.infos))
	a.owners.offsets = slices.Grow(a.owners.offsets, len(r.entries)-len(a.owners.offsets))
	for i := len(a.infos); i < len(r.entries); i++ {
		e := &r.entries[i]
		a.owners.offsets = append(a.owners.offsets, e.Offset)
		info := entryInfo{memoLen: a.owners.count}
		m.reset(a.owners.count)
		m.entry = int32(i)
		root, err := m.run(e.valueOff, e.valueLen)
		var fe *FormatError
		switch {
		case err == nil:
		case errors.As(err, &fe):
			// Any value that stops early, at a limit of this package as
			// where pickle.load raises, refuses the whole file: the memo
			// writes it would have made after that point are unknown, so
			// the next entries' MEMOIZE indices (and what they read)
			// could not be trusted.
			sentinel := fe.Err
			if sentinel == errStructure {
				sentinel = nil
			}
			sep := ": "
			switch {
			case errors.Is(err, ErrSharedMemo):
				sep = " "
			case errors.Is(err, ErrLimit):
				sep = " stops early at a limit: "
			}
			a.err = &FormatError{Offset: fe.Offset, Msg: fmt.Sprintf("%s at offset %d%s%s", entryName(e), e.Offset, sep, fe.Msg), Err: sentinel}
			return a.err
		default:
			// I/O, or interrupted (WithInterrupt): the entry's memo writes
			// are half done, so the analysis starts over next time.
			*a = analysis{}
			return err
		}
		if err == nil {
			switch nd := m.at(root); nd.kind {
			case kArray:
				info.kind, info.array = KindArray, nd.x.(*Array)
			case kMasked:
				info.kind, info.array = KindMasked, nd.x.(*Masked)
			}
		}
		a.infos = append(a.infos, info)
	}
	m.reset(0) // the last value's nodes go
	return nil
}

func entryName(e *Entry) string {
	if e.Live {
		return fmt.Sprintf("entry %q", e.Key)
	}
	if e.Key != "" {
		return fmt.Sprintf("deleted entry %q", e.Key)
	}
	return "deleted entry"
}

func errOffset(err error) int64 {
	var fe *FormatError
	if errors.As(err, &fe) {
		return fe.Offset
	}
	return 0
}

func errMsg(err error) string {
	var fe *FormatError
	if errors.As(err, &fe) {
		return fe.Msg
	}
	return err.Error()
}

// info returns the analysis of entry i.
func (r *Reader) info(i int) (entryInfo, error) {
	if err := r.analyze(); err != nil {
		return entryInfo{}, err
	}
	return r.an.infos[i], nil
}

// nextMemo is where the memo slots of a new entry start: above every
// slot used (mmappickle takes the largest trailer index, at least 1; a
// file's entries may use more than their trailers say).
func (r *Reader) nextMemo() int64 {
	return max(1, int64(r.memoMax), r.an.owners.top)
}

// runAlone runs the value at file bytes [off, off+n) alone, with a memo of
// its own.
func runAlone(src *source, off, n int64, lim Limits) (*machine, ref, error) {
	if off < 0 || n < 0 || off > src.size || n > src.size-off {
		return nil, 0, formatErr(max(off, 0), "value of %d bytes at offset %d runs past the end of the file", n, off)
	}
	m := newMachine(src, lim)
	m.reset(0)
	root, err := m.run(off, n)
	return m, root, err
}

// standaloneArray runs one value alone and returns the *Array or *Masked
// it holds, nil for another value.
func standaloneArray(src *source, off, n int64, lim Limits) (any, error) {
	m, root, err := runAlone(src, off, n, lim)
	if err != nil {
		return nil, err
	}
	switch nd := m.at(root); nd.kind {
	case kArray, kMasked:
		return withSource(nd.x, src), nil
	}
	return nil, nil
}

// decodeValue decodes the value pickle at file bytes [off, off+n) alone:
// an *Array, a *Masked or a generic Go value.
func decodeValue(src *source, off, n int64, lim Limits) (any, error) {
	m, root, err := runAlone(src, off, n, lim)
	if err != nil {
		return nil, err
	}
	switch nd := m.at(root); nd.kind {
	case kArray, kMasked:
		return withSource(nd.x, src), nil
	}
	return m.goValue(root, src, func() ([]byte, error) {
		b, err := src.readAt(off, n)
		if err != nil {
			return nil, err
		}
		ops, _, err := renumberMemo(b, off, 0, 0)
		return framed(ops), err
	})
}
