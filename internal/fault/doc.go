// Package fault turns the memory faults of reading a mapped file that
// shrank (SIGBUS), and any other panic, into errors: the one guard the
// bridge, the converters and libmmp use around code that touches mappings.
// It must not import the project's other packages.
package fault
