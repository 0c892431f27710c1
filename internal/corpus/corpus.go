package corpus

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Profiles are the corpus's two directories: files written by mmappickle
// with its own array encoding, and with numpy's (the portable profile).
var Profiles = []string{"mmappickle", "portable"}

// Manifest describes every file of one profile.
type Manifest struct {
	Profile string          `json:"profile"`
	MadeBy  json.RawMessage `json:"made_by"`
	Files   map[string]File `json:"files"`
}

// File is one reference file.
type File struct {
	Size         int64            `json:"size"`
	SHA256       string           `json:"sha256"`
	CommitNumber int32            `json:"commit_number"`
	Replayable   bool             `json:"replayable"`
	Keys         map[string]Entry `json:"keys"`
}

// Array is an array's record (a plain array, or a masked array's data or
// mask). A 0-d array's Shape is [].
type Array struct {
	DType       string `json:"dtype"`
	StoredDType string `json:"stored_dtype"`
	Shape       []int  `json:"shape"`
	NBytes      int64  `json:"nbytes"`
	SHA256      string `json:"sha256"`
	DataOffset  int64  `json:"data_offset"`
}

// Entry is one key of a file: Kind "array" (Array set), "masked" (Data
// and Mask), or a value (Repr, JSON).
type Entry struct {
	Kind string `json:"kind"`
	Array
	Data        *Array          `json:"data"`
	Mask        *Array          `json:"mask"`
	Repr        string          `json:"repr"`
	JSON        json.RawMessage `json:"json"`
	EntryOffset int64           `json:"entry_offset"`
	EntrySize   int64           `json:"entry_size"`
	ReadError   string          `json:"mmappickle_read_error"`
}

// Dir is the corpus directory (compat/testdata), found from this source
// file, so that tests of any package can use it.
func Dir() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "compat", "testdata")
}

// Path is the path of a reference file of a profile.
func Path(profile, name string) string { return filepath.Join(Dir(), profile, name) }

// Load reads a profile's manifest.
func Load(profile string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(Dir(), profile, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s manifest: %w", profile, err)
	}
	if len(m.Files) == 0 {
		return nil, fmt.Errorf("%s manifest: no files", profile)
	}
	return &m, nil
}
