"""A minimal mmappickle writer following the documented protocol.

Appends keys to an mmappickle file shared with other processes: flock the
file, re-read the entry index, append the entry (written deleted, then the
terminator), flip it live, bump the commit number, unlock. Values are small
ints pickled by CPython itself. Used by the Go tests as an independent
implementation; it imports nothing but the standard library.

usage: pywriter.py FILE PREFIX COUNT
"""
import fcntl
import os
import pickle
import struct
import sys

HEADER = 24
TERMINATOR = pickle.FRAME + struct.pack("<Q", 2) + pickle.DICT + pickle.STOP


def scan(f):
    size = os.fstat(f.fileno()).st_size
    off, memo = HEADER, 1
    while off < size - len(TERMINATOR):
        f.seek(off)
        head = f.read(9)
        assert head[0:1] == pickle.FRAME, off
        n = struct.unpack("<Q", head[1:9])[0]
        f.seek(off + 9 + n - 7)
        memo = max(memo, struct.unpack("<i", f.read(4))[0])
        off += 9 + n
    return off, memo


def value_pickle(v):
    p = pickle.dumps(v, 4)
    # PROTO 4, FRAME n ... STOP; small ints and strings carry no memo.
    if p[2:3] == pickle.FRAME:
        p = p[11:]
    else:
        p = p[2:]
    return p[:-1]


def append(f, key, value):
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
        off, memo = scan(f)
        k = key.encode("utf8")
        v = value_pickle(value)
        body = pickle.SHORT_BINUNICODE + bytes([len(k)]) + k + v
        body += pickle.BININT + struct.pack("<i", memo) + pickle.POP + pickle.POP + pickle.POP
        entry = pickle.FRAME + struct.pack("<Q", len(body)) + body
        f.seek(off)
        f.write(entry + TERMINATOR)
        f.flush()
        f.seek(off + len(entry) - 2)
        f.write(pickle.NEWTRUE)
        f.seek(18)
        commit = struct.unpack("<i", f.read(4))[0]
        f.seek(18)
        f.write(struct.pack("<i", commit + 1))
        f.flush()
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)


def main():
    path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(path, "rb+") as f:
        for i in range(count):
            append(f, "%s%d" % (prefix, i), i)


if __name__ == "__main__":
    main()
