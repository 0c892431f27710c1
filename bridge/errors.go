package bridge

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap one of these where it
// applies, so callers can test with errors.Is.
var (
	// ErrNotMmappickle: the file does not start with the mmappickle header.
	ErrNotMmappickle = errors.New("not an mmappickle file")
	// ErrTorn: the file does not end with the terminator, or an entry runs
	// past it; a write was interrupted. Repair repairs it.
	ErrTorn = errors.New("file is torn (an interrupted write); run fsck")
	// ErrKeyNotFound: no live entry has that key.
	ErrKeyNotFound = errors.New("key not found")
	// ErrNotArray: the key holds a value that is not an array.
	ErrNotArray = errors.New("not an array")
	// ErrLimit: the input exceeds a configured limit (see Options).
	ErrLimit = errors.New("limit exceeded")
	// ErrReadOnly: a change was asked of a file opened read-only.
	ErrReadOnly = errors.New("file opened read-only")
	// ErrUnsupported: the value is valid but this package cannot represent it
	// (an object array, a structured dtype, ...).
	ErrUnsupported = errors.New("unsupported")
	// ErrClosed: the file was closed.
	ErrClosed = errors.New("file already closed")
	// ErrShrank: the file became shorter than its mapping while it was
	// read (another process truncated it).
	ErrShrank = errors.New("file shrank while being read")
	// ErrMemoFull: a new entry would need memo indices past 2^31-1, the
	// largest an entry's trailer holds, or write one from 2^25, which
	// readers refuse (pickle.load allocates twice the largest index).
	ErrMemoFull = errors.New("memo indices exhausted")
)

// FormatError reports malformed input at a byte offset of the file.
type FormatError struct {
	Offset int64  // file offset where the problem was found
	Key    string // the entry's key, when known
	Msg    string
	Err    error // optional underlying sentinel (ErrTorn, ErrLimit, ...)
}

func (e *FormatError) Error() string {
	s := fmt.Sprintf("offset %d: %s", e.Offset, e.Msg)
	if e.Key != "" {
		s = fmt.Sprintf("key %q: %s", e.Key, s)
	}
	if e.Err != nil && e.Err != ErrLimit && e.Err != ErrUnsupported && e.Err != errStructure {
		// The cause, unless the message already says it.
		if w := e.Err.Error(); !strings.Contains(e.Msg, w) {
			s += " (" + w + ")"
		}
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(off int64, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// withKey attaches key context to a FormatError (or wraps another error).
func withKey(err error, key string) error {
	if err == nil {
		return nil
	}
	var fe *FormatError
	if errors.As(err, &fe) && fe.Key == "" {
		c := *fe
		c.Key = key
		return &c
	}
	if errors.As(err, &fe) {
		return err
	}
	return fmt.Errorf("key %q: %w", key, err)
}
