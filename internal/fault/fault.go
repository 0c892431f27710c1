package fault

import (
	"fmt"
	"runtime/debug"
)

// Guard is deferred around code that reads or writes a mapping:
//
//	defer fault.Guard(&err, "reading the array", bridge.ErrShrank)()
//
// A memory fault becomes "what: onFault" (wrapping onFault), any other
// panic "what: internal error: ...". Guard itself must be called in the
// defer statement (Guard(...)() ): the function it returns recovers.
func Guard(err *error, what string, onFault error) func() {
	old := debug.SetPanicOnFault(true)
	return func() {
		debug.SetPanicOnFault(old)
		p := recover()
		if p == nil {
			return
		}
		if _, isFault := p.(interface{ Addr() uintptr }); isFault && onFault != nil {
			*err = fmt.Errorf("%s: %w", what, onFault)
			return
		}
		*err = fmt.Errorf("%s: internal error: %v", what, p)
	}
}
