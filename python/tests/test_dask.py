"""dask over a memory-mapped array larger than its chunks."""
import numpy as np
import pytest

from helpers import require
from mmpbridge import EmptyNDArray, mmapdict

da = require("dask.array")


def test_dask_over_a_memmap(path):
    shape = (2000, 1500)
    with mmapdict(path) as m:
        m["cube"] = EmptyNDArray(shape, np.float32)
        cube = m["cube"]
        for i in range(0, shape[0], 250):  # filled in pieces, never whole in memory
            cube[i:i + 250] = np.arange(i, i + 250, dtype=np.float32)[:, None]
        cube.flush()
    with mmapdict(path, readonly=True) as m:
        x = da.from_array(m["cube"], chunks=(256, 256))
        assert x.npartitions > 20 and x.nbytes > 256 * 256 * 4 * 20
        total = x.sum(dtype=np.float64).compute()
        assert total == np.arange(shape[0], dtype=np.float64).sum() * shape[1]
        col = (x[:, 7] * 2).compute()
        assert list(col[:3]) == [0, 2, 4]
