package fault

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

var errShrank = errors.New("shrank")

func TestGuardFault(t *testing.T) {
	// A mapping of one page, then unmapped: reading it faults.
	b, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skip(err)
	}
	p := unsafe.Pointer(&b[0])
	syscall.Munmap(b)
	read := func() (err error) {
		defer Guard(&err, "reading", errShrank)()
		_ = *(*byte)(p)
		return nil
	}
	if err := read(); !errors.Is(err, errShrank) || !strings.HasPrefix(err.Error(), "reading: ") {
		t.Errorf("fault: %v", err)
	}
}

func TestGuardPanic(t *testing.T) {
	f := func() (err error) {
		defer Guard(&err, "work", errShrank)()
		var m map[string]int
		m["x"] = 1
		return nil
	}
	if err := f(); err == nil || errors.Is(err, errShrank) || !strings.Contains(err.Error(), "work: internal error") {
		t.Errorf("panic: %v", err)
	}
	g := func() (err error) {
		defer Guard(&err, "work", nil)()
		return errors.New("plain")
	}
	if err := g(); err == nil || err.Error() != "plain" {
		t.Errorf("no panic: %v", err)
	}
}
