"""vacuum keeps a reservation (EmptyNDArray) unallocated: it copies data,
not holes, by path and on a file object."""
import os
import tempfile

import numpy as np
import pytest

from mmpbridge import EmptyNDArray, mmapdict

SHAPE = (4096, 4096)  # float32: 64 MiB reserved


def _keeps_holes(directory):
    fd, name = tempfile.mkstemp(dir=directory)
    try:
        os.pwrite(fd, b"\0" * 4096, 16 << 20)
        return os.fstat(fd).st_blocks * 512 < 8 << 20
    finally:
        os.close(fd)
        os.unlink(name)


@pytest.mark.parametrize("how", ["path", "fileobj"])
def test_vacuum_keeps_reservation_sparse(tmp_path, how):
    if not hasattr(os.stat_result, "st_blocks") or not _keeps_holes(tmp_path):
        pytest.skip(f"the file system of {tmp_path} does not keep holes")
    p = tmp_path / "r.mmpkl"
    f = open(p, "w+b") if how == "fileobj" else None
    m = mmapdict(f if f else str(p))
    m["before"] = np.ones(1 << 20, dtype=np.float32)  # 4 MiB, deleted below
    m["r"] = EmptyNDArray(SHAPE, np.float32)
    patch = (np.arange(50 * 4096, dtype=np.float32) * 0.5 + 1).reshape(50, 4096)
    r = m["r"]
    r[1000:1050] = patch
    del r
    m["after"] = 7
    del m["before"]
    m.vacuum()
    allocated = os.stat(p).st_blocks * 512
    assert allocated < 3 << 20, f"{allocated} bytes allocated after vacuum for a 64 MiB reservation holding 800 KiB"
    got = m["r"]
    assert got.shape == SHAPE and got.dtype == np.float32
    assert np.array_equal(got[1000:1050], patch)
    assert not got[:1000].any() and not got[1050:].any()
    assert m["after"] == 7 and "before" not in m
    del got
    m.close()
    if f:
        f.close()
