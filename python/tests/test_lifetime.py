"""No reference cycles; handles freed; nothing crashes after close."""
import gc
import os
import weakref

import numpy as np

from mmpbridge import mmapdict


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_del_frees_everything(path):
    gc.collect()
    fds = _open_fds()
    gc.disable()  # only reference counting: no cycle may be needed
    try:
        m = mmapdict(path)
        m["a"] = np.arange(3)
        arr = m["a"]
        ref = weakref.ref(m)
        del m
        assert ref() is None
        assert _open_fds() <= fds + 1  # arr's mapping keeps one descriptor
        assert list(arr) == [0, 1, 2]
        del arr
    finally:
        gc.enable()
    assert _open_fds() <= fds


def test_many_dicts_do_not_leak(path):
    mmapdict(path).close()
    fds = _open_fds()
    for _ in range(300):
        with mmapdict(path) as m:
            m["k"] = 1
            assert m["k"] == 1
    for _ in range(300):
        mmapdict(path, readonly=True)
    gc.collect()
    assert _open_fds() <= fds + 2
