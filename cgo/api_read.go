package main

// Reading: keys, entries, array data, value pickles, verification.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
	"mmpbridge/pyval"
)

// keysJSON returns the live keys in file order as a JSON list.
func keysJSON(h int64) ([]byte, error) {
	f, err := handles.get(h)
	if err != nil {
		return nil, err
	}
	keys, err := f.Keys()
	if err != nil {
		return nil, err
	}
	if keys == nil {
		keys = []string{}
	}
	return render.Marshal(keys)
}

// entryJSON returns the description of key, byte for byte what
// `mmpconv inspect --json` prints for it.
func entryJSON(h int64, key string) ([]byte, error) {
	return entryJSONCtx(context.Background(), h, key)
}

// entryJSONCtx is entryJSON stopping when ctx is done.
func entryJSONCtx(ctx context.Context, h int64, key string) ([]byte, error) {
	f, err := handles.get(h)
	if err != nil {
		return nil, err
	}
	v, err := f.Get(key)
	if err != nil {
		return nil, err
	}
	d, err := render.Describe(ctx, v, false)
	if err != nil {
		return nil, fmt.Errorf("%s: key %q: %w", f.Name(), key, err)
	}
	return d, nil
}

// arrayData returns the bytes of the array under key: a view of the file's
// mapping, valid until the handle is closed.
func arrayData(h int64, key string) ([]byte, error) {
	f, err := handles.get(h)
	if err != nil {
		return nil, err
	}
	if k, err := f.KindOf(key); err == nil && k == bridge.KindMasked {
		return nil, fmt.Errorf("%s: key %q is a masked array: use mmp_masked_data (which 0: data, 1: mask)", f.Name(), key)
	}
	a, err := f.Array(key)
	if err != nil {
		return nil, err
	}
	return mapped(f, key, a)
}

// maskedData returns the data (which 0) or mask (which 1) bytes of the
// masked array under key, as arrayData does.
func maskedData(h int64, key string, which int) ([]byte, error) {
	f, err := handles.get(h)
	if err != nil {
		return nil, err
	}
	if which != 0 && which != 1 {
		return nil, fmt.Errorf("which %d: want 0 (data) or 1 (mask)", which)
	}
	m, err := f.Masked(key)
	if err != nil {
		return nil, err
	}
	if which == 0 {
		return mapped(f, key, m.Data)
	}
	return mapped(f, key, m.Mask)
}

func mapped(f *bridge.File, key string, a *bridge.Array) ([]byte, error) {
	b := a.Bytes()
	if b == nil {
		return nil, fmt.Errorf("%s: key %q: the file is not memory-mapped (too large for this platform's address space?)", f.Name(), key)
	}
	return b, nil
}

// arrayInfo is where an array lies in the file, for a binding to map it
// itself (numpy.memmap): entryInfo's fields. DType is dtypeJSON's form;
// ItemSize is the dtype's item size, for the binding to check the dtype it
// builds (NBytes is the product of Shape times ItemSize).
type arrayInfo struct {
	DType    any    `json:"dtype"`
	ItemSize int    `json:"itemsize"`
	Shape    []int  `json:"shape"`
	Order    string `json:"order"`
	Offset   int64  `json:"offset"`
	NBytes   int64  `json:"nbytes"`
}

func infoOf(a *bridge.Array) arrayInfo {
	shape := a.Shape
	if shape == nil {
		shape = []int{}
	}
	return arrayInfo{DType: dtypeJSON(a.DType), ItemSize: a.DType.ItemSize, Shape: shape, Order: string(a.Order()), Offset: a.Offset, NBytes: a.NBytes}
}

// entryInfo describes key for a binding: {"kind": "value"}, an array's
// arrayInfo with "kind": "array", or for a masked array "data" and "mask"
// (arrayInfo each) and "fill" (the fill value's bytes in hex, in the data's
// dtype, or null).
func entryInfo(h int64, key string) ([]byte, error) {
	f, err := handles.get(h)
	if err != nil {
		return nil, err
	}
	return entryInfoOf(f, f.Name(), key)
}

// source is what the read functions need of a local File or a remote
// Reader.
type source interface {
	KindOf(key string) (bridge.Kind, error)
	Array(key string) (*bridge.Array, error)
	Masked(key string) (*bridge.Masked, error)
	Pickle(key string) ([]byte, error)
	PlainPickle(key string, trust ...pyval.Global) ([]byte, error)
}

func entryInfoOf(f source, name, key string) ([]byte, error) {
	k, err := f.KindOf(key)
	if err != nil {
		return nil, err
	}
	switch k {
	case bridge.KindArray:
		a, err := f.Array(key)
		if err != nil {
			return nil, err
		}
		return json.Marshal(struct {
			Kind string `json:"kind"`
			arrayInfo
		}{"array", infoOf(a)})
	case bridge.KindMasked:
		m, err := f.Masked(key)
		if err != nil {
			return nil, err
		}
		var fill *string
		if fa, ok := m.Fill.(*bridge.Array); ok && fa.NBytes == int64(fa.DType.ItemSize) && fa.DType == m.Data.DType {
			b := make([]byte, fa.NBytes)
			if _, err := fa.Section().ReadAt(b, 0); err != nil {
				return nil, fmt.Errorf("%s: key %q: fill value: %w", name, key, err)
			}
			s := hex.EncodeToString(b)
			fill = &s
		}
		return json.Marshal(struct {
			Kind string    `json:"kind"`
			Data arrayInfo `json:"data"`
			Mask arrayInfo `json:"mask"`
			Fill *string   `json:"fill"`
		}{"masked", infoOf(m.Data), infoOf(m.Mask), fill})
	}
	return valueInfo, nil
}

// valueInfo is entryInfoOf of a value that is not an array.
var valueInfo = []byte(`{"kind":"value"}`)

// valuePickle returns key's value as a complete pickle for pickle.loads.
// Unless trusted, only plain data (as verify judges it) is handed out: the
// error of any other value wraps bridge.ErrNotPlain.
func valuePickle(h int64, key string, trusted bool) ([]byte, error) {
	f, err := handles.get(h)
	if err != nil {
		return nil, err
	}
	return valuePickleOf(f, key, trusted)
}

// valuePickleOf is valuePickle of a mapped or remote file. Untrusted, the
// pickle comes from the one read its proof ran on (bridge PlainPickle): no
// second read, which a writer or a server could answer with other bytes.
func valuePickleOf(f source, key string, trusted bool) ([]byte, error) {
	if trusted {
		return f.Pickle(key)
	}
	return f.PlainPickle(key)
}

// verifyFile is mmpconv verify --json of path; trust is a JSON list of
// "module.name" globals allowed with any arguments ("" or null: none).
func verifyFile(path, trust string) ([]byte, error) {
	return verifyFileCtx(context.Background(), path, trust)
}

// verifyFileCtx is verifyFile stopping when ctx is done.
func verifyFileCtx(ctx context.Context, path, trust string) ([]byte, error) {
	var names []string
	if trust != "" {
		if err := json.Unmarshal([]byte(trust), &names); err != nil {
			return nil, fmt.Errorf("trust JSON: %w: %w", err, errInvalidArg)
		}
	}
	var globals []pyval.Global
	for _, n := range names {
		g, err := pyval.ParseGlobal(n)
		if err != nil {
			return nil, fmt.Errorf("trust: %w: %w", err, errInvalidArg)
		}
		globals = append(globals, g)
	}
	rep, err := bridge.VerifyFile(path, globals, bridge.WithInterrupt(ctxStop(ctx)))
	if err != nil {
		return nil, err
	}
	return render.VerifyJSON(path, rep, false)
}

// hasKey tells whether key is live.
func hasKey(h int64, key string) (bool, error) {
	f, err := handles.get(h)
	if err != nil {
		return false, err
	}
	_, err = f.Entry(key)
	if errors.Is(err, bridge.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// keyCount is the number of live keys.
func keyCount(h int64) (int, error) {
	f, err := handles.get(h)
	if err != nil {
		return 0, err
	}
	keys, err := f.Keys()
	return len(keys), err
}

// allowedJSON lists the globals plain data may use, as "module.name".
func allowedJSON() ([]byte, error) {
	return json.Marshal(bridge.AllowedGlobals())
}
