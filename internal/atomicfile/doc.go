// Package atomicfile makes new files that appear under their name whole or
// not at all, and leave nothing behind when the process is killed.
//
// On Linux the file is unnamed while it is written (O_TMPFILE) and linked
// into place when complete: a kill at any moment leaves nothing. Where that
// is not available (other systems, file systems without O_TMPFILE, no
// /proc), it is a hidden file beside the destination named
// ".NAME.tmp-PID-RANDOM", renamed into place when complete; Create removes
// such files left by processes that no longer run.
//
// It must not import the project's other packages.
package atomicfile
