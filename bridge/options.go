package bridge

// Limits bound what a reader will do on behalf of an untrusted file. The
// zero value of a field means its default.
type Limits struct {
	// MaxKeys is the largest number of entries (live or dead) a file may
	// have. Default 10,000,000.
	MaxKeys int
	// MaxValueBytes bounds the memory one value may take when decoded:
	// strings, bytes and the copies pickle.load would make, each use of a
	// part shared through the memo counted. Array data, which stays in the
	// file, does not count. Default 256 MiB.
	MaxValueBytes int64
	// MaxDepth is the deepest nesting of containers in a decoded value.
	// Default 1,000 (CPython's recursion limit).
	MaxDepth int
	// MaxOps is the largest number of pickle opcodes decoded for one value;
	// it bounds the objects a value builds (at most one per opcode).
	// Default 100,000,000.
	MaxOps int64
}

const (
	defaultMaxKeys       = 10_000_000
	defaultMaxValueBytes = 256 << 20
	defaultMaxDepth      = 1000
	defaultMaxOps        = 100_000_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxKeys <= 0 {
		l.MaxKeys = defaultMaxKeys
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = defaultMaxValueBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = defaultMaxDepth
	}
	if l.MaxOps <= 0 {
		l.MaxOps = defaultMaxOps
	}
	return l
}
