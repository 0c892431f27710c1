package pyval

import (
	"fmt"
	"strings"
)

type (
	// Tuple is a Python tuple.
	Tuple []any
	// Dict is a Python dict, in insertion order,
	// with Python's key equality applied (1, 1.0 and True are one key: the
	// first spelling, the last value). A key is any value hashable in
	// Python: not a list, Dict, Set or ByteArray, nor a Tuple holding one.
	Dict []DictItem
	// OrderedDict is a collections.OrderedDict, as Dict.
	OrderedDict []DictItem
	// DictItem is one key-value pair of a Dict.
	DictItem struct{ Key, Value any }
	// Set is a Python set, in the order its pickle lists the elements, an
	// element equal to an earlier one dropped; written in the order given.
	Set []any
	// FrozenSet is a Python frozenset, ordered like Set.
	FrozenSet []any
	// ByteArray is a Python bytearray.
	ByteArray []byte
)

// Object is a value, or a part of one, left undecoded: made by a global
// outside the decoder's allow-list (nothing of it is imported or run), by
// an allowed callable given arguments numpy and CPython never write, or a
// container whose keys' equality is not modelled. Module and Name say what
// made it; Why says why it is not decoded. Pickle is the value as a
// complete pickle of its own when the Object is a key's whole value, so
// that it can be written back verbatim; nil for a part.
type Object struct {
	Module, Name string
	Why          string
	Pickle       []byte
}

// Global names a module-level callable: module and name as a pickle gives
// them (GLOBAL, STACK_GLOBAL, INST).
type Global struct{ Module, Name string }

// ParseGlobal parses "module.name" (split at the last dot) or
// "module:name" (split at the colon, for names with dots).
func ParseGlobal(s string) (Global, error) {
	var module, name string
	if i := strings.IndexByte(s, ':'); i >= 0 {
		module, name = s[:i], s[i+1:]
	} else if i := strings.LastIndexByte(s, '.'); i >= 0 {
		module, name = s[:i], s[i+1:]
	}
	if module == "" || name == "" || strings.ContainsAny(s, "\n\x00") {
		return Global{}, fmt.Errorf("%q is not module.name or module:name", s)
	}
	return Global{Module: module, Name: name}, nil
}
