"""The helper process of a forked process (see _lib): runs the libmmp calls
it is sent, on stdin, and answers on stdout; exits at end of input. Both
ends are mmpbridge: the messages are pickles of plain arguments, results
and exceptions."""
from __future__ import annotations

import pickle
import struct
import sys

from . import _lib

_calls = {name: getattr(_lib, name) for name in _lib.REMOTE_CALLS}


def main() -> None:
    rd, wr = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = rd.read(8)
        if len(head) < 8:
            return
        n, = struct.unpack("<Q", head)
        name, args = pickle.loads(rd.read(n))
        try:
            res = (True, _calls[name](*args))
        except BaseException as e:  # noqa: BLE001 - sent back to the caller
            res = (False, e)
        try:
            out = pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001 - an exception that does not pickle
            out = pickle.dumps((False, OSError(f"{type(res[1]).__name__}: {res[1]}")), protocol=pickle.HIGHEST_PROTOCOL)
        wr.write(struct.pack("<Q", len(out)) + out)
        wr.flush()


if __name__ == "__main__":
    main()
