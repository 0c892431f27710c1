package main

// Writing: arrays from the caller's memory, reserved arrays, pickles,
// deletion, vacuum, fsck, the commit number.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"mmpbridge/bridge"
	"mmpbridge/pyval"
)

// arrayHeader is the JSON a caller describes an array with:
// {"dtype": "<f8", "shape": [2, 3], "order": "C"} (order C or F; F data is
// in Fortran order).
type arrayHeader struct {
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
	Order string `json:"order"`
}

func parseHeader(s string) (bridge.ArrayHeader, int64, error) {
	var j arrayHeader
	if err := decodeOptions(s, &j, "dtype, shape, order"); err != nil {
		return bridge.ArrayHeader{}, 0, fmt.Errorf("array header: %w: %w", err, errInvalidArg)
	}
	d, err := bridge.ParseDType(j.DType)
	if errors.Is(err, bridge.ErrUnsupported) {
		return bridge.ArrayHeader{}, 0, fmt.Errorf("array header: %w", err)
	} else if err != nil {
		return bridge.ArrayHeader{}, 0, fmt.Errorf("array header: %w: %w", err, errInvalidArg)
	}
	if j.Order != "C" && j.Order != "F" && j.Order != "" {
		return bridge.ArrayHeader{}, 0, fmt.Errorf("array header: order %q: want C or F: %w", j.Order, errInvalidArg)
	}
	h := bridge.ArrayHeader{DType: d, Shape: j.Shape, Fortran: j.Order == "F"}
	n, err := h.NBytes()
	if err != nil {
		return bridge.ArrayHeader{}, 0, fmt.Errorf("array header: %w: %w", err, errInvalidArg)
	}
	return h, n, nil
}

// putArray stores the array whose bytes are data (the caller's memory, read
// during the call) under key.
func putArray(h int64, key, header string, data []byte) error {
	f, err := handles.get(h)
	if err != nil {
		return err
	}
	ah, n, err := parseHeader(header)
	if err != nil {
		return err
	}
	if int64(len(data)) != n {
		return fmt.Errorf("key %q: %d bytes of data for an array of %d: %w", key, len(data), n, errInvalidArg)
	}
	return f.PutArray(key, ah, stopReader{bytes.NewReader(data)})
}

// putMasked stores a masked array: data, mask (one byte per element) and
// fill (one element, or empty for numpy's default).
func putMasked(h int64, key, header string, data, mask, fill []byte) error {
	f, err := handles.get(h)
	if err != nil {
		return err
	}
	ah, n, err := parseHeader(header)
	if err != nil {
		return err
	}
	count := n / max(int64(ah.DType.ItemSize), 1)
	if int64(len(data)) != n || int64(len(mask)) != count {
		return fmt.Errorf("key %q: %d bytes of data and %d of mask for an array of %d elements of %d bytes: %w", key, len(data), len(mask), count, ah.DType.ItemSize, errInvalidArg)
	}
	if len(fill) != 0 && len(fill) != ah.DType.ItemSize {
		return fmt.Errorf("key %q: fill value of %d bytes, want %d: %w", key, len(fill), ah.DType.ItemSize, errInvalidArg)
	}
	if len(fill) == 0 {
		fill = nil
	}
	return f.PutMasked(key, ah, stopReader{bytes.NewReader(data)}, stopReader{bytes.NewReader(mask)}, fill)
}

// reserve appends an array under key without its data (a hole the caller
// fills through its own mapping of the file, at the returned offset). With
// commit the key is live at once (mmappickle's EmptyNDArray) and the slot
// is 0; otherwise the slot handle goes to slotDone.
func reserve(h int64, key, header string, commit bool) (slot, offset int64, err error) {
	f, err := handles.get(h)
	if err != nil {
		return 0, 0, err
	}
	ah, _, err := parseHeader(header)
	if err != nil {
		return 0, 0, err
	}
	s, err := f.Reserve(key, ah)
	if err != nil {
		return 0, 0, err
	}
	if commit {
		return 0, s.Offset, s.Commit()
	}
	return slots.add(s), s.Offset, nil
}

// slotDone commits a reserved slot (the key becomes live) or aborts it (the
// entry stays deleted).
func slotDone(slot int64, commit bool) error {
	s, err := slots.remove(slot)
	if err != nil {
		return err
	}
	if commit {
		return s.Commit()
	}
	return s.Abort()
}

// putPickle stores a value given as a complete pickle (pickle.dumps).
func putPickle(h int64, key string, p []byte) error {
	f, err := handles.get(h)
	if err != nil {
		return err
	}
	return f.Put(key, pyval.Object{Pickle: p})
}

// deleteKeys deletes the keys of a JSON list, all or none.
func deleteKeys(h int64, keys string) error {
	f, err := handles.get(h)
	if err != nil {
		return err
	}
	var ks []string
	if err := json.Unmarshal([]byte(keys), &ks); err != nil {
		return fmt.Errorf("keys JSON: %w: %w", err, errInvalidArg)
	}
	return f.Delete(ks...)
}

// vacuum reclaims deleted entries; as mmappickle's, it does nothing (the
// commit number stays) when no deleted entry holds a value (alignment
// padding aside).
func vacuum(h int64) error {
	f, err := handles.get(h)
	if err != nil {
		return err
	}
	es, err := f.Entries()
	if err != nil {
		return err
	}
	for _, e := range es {
		if !e.Live && e.Key != "" {
			return f.Vacuum()
		}
	}
	return nil
}

// fsck repairs the handle's file (see bridge.File.Fsck) and reports as
// JSON: {"entries", "cut_at" (-1: nothing cut), "cut_bytes", "restored",
// "repaired", "problem"}.
func fsck(h int64) ([]byte, error) {
	f, err := handles.get(h)
	if err != nil {
		return nil, err
	}
	rep, err := f.Repair()
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Entries  int    `json:"entries"`
		CutAt    int64  `json:"cut_at"`
		CutBytes int64  `json:"cut_bytes"`
		Restored int    `json:"restored"`
		Repaired bool   `json:"repaired"`
		Problem  string `json:"problem"`
	}{rep.Entries, rep.CutAt, rep.CutBytes, rep.Restored, rep.Repaired, rep.Problem})
}

func commitNumber(h int64) (int32, error) {
	f, err := handles.get(h)
	if err != nil {
		return 0, err
	}
	return f.CommitNumber()
}

func setCommitNumber(h int64, n int32) error {
	f, err := handles.get(h)
	if err != nil {
		return err
	}
	return f.SetCommitNumber(n)
}
