"""m.lazy(key) of a local file: an array-like that pickles by reference
(path, key, the entry's identity) and maps the file where it is unpickled;
m[key], a numpy.memmap, pickles by value. dask.distributed over it moves no
array data."""
import os
import pickle
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest

from helpers import require
from mmpbridge import EmptyNDArray, mmapdict
from mmpbridge._lazy import LocalLazyArray
from mmpbridge._lib import FormatError

MiB = 1 << 20


def _fill(path):
    rng = np.random.default_rng(7)
    with mmapdict(path) as m:
        m["c"] = np.arange(2 * 3 * 5, dtype="<f4").reshape(2, 3, 5)
        m["f"] = np.asfortranarray(rng.integers(-9, 9, size=(4, 6)).astype(">i2"))
        m["rec"] = np.array([(1, 2.5), (3, -1.0)], dtype=[("a", "<i4"), ("b", "<f8")])
        m["empty"] = np.empty((0, 3), "<u2")
        m["masked"] = np.ma.masked_array([1.0, 2.0], [False, True])
        m["meta"] = {"gain": 1.5}


INDEXES = [(), 0, -1, (1, 2), slice(None, None, -1), (Ellipsis, 1), (slice(1, None), None, slice(None, None, 2)),
           [1, 0, 1], (np.array([0, 1]), np.array([1, 2])), np.s_[..., ::3]]


def test_array_like_matches_the_memmap(path):
    _fill(path)
    with mmapdict(path, readonly=True) as m:
        for k in ("c", "f", "rec", "empty"):
            mm, lz = m[k], m.lazy(k)
            assert isinstance(lz, LocalLazyArray)
            assert (lz.shape, lz.dtype, lz.ndim, lz.size, lz.nbytes) == (mm.shape, mm.dtype, mm.ndim, mm.size, mm.nbytes)
            assert len(lz) == len(mm)
            a = np.asarray(lz)
            assert a.dtype == mm.dtype and np.array_equal(a, mm) and not a.flags.writeable
            assert a.flags.f_contiguous == mm.flags.f_contiguous
            for ix in INDEXES:
                try:
                    want = mm[ix]
                except IndexError:
                    with pytest.raises(IndexError):
                        lz[ix]
                    continue
                got = lz[ix]
                assert type(got) is not np.memmap
                if isinstance(want, np.ndarray):
                    want = np.asarray(want)
                    assert isinstance(got, np.ndarray) and not np.shares_memory(got, a), ix  # copied out of the mapping
                    assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), (k, ix)
                else:
                    assert got == want, (k, ix)
            if mm.size:
                assert np.array_equal(lz[np.asarray(mm) == np.asarray(mm).flat[0]],
                                      np.asarray(mm)[np.asarray(mm) == np.asarray(mm).flat[0]])  # boolean
        # xarray's raw indexing: a tuple of ints and slices, always an ndarray.
        r = m.lazy("c").read((1, slice(0, 2), 3))
        assert type(r) is np.ndarray and list(r) == [18.0, 23.0]
        assert type(m.lazy("c").read((0, 0, 0))) is np.ndarray


def test_array_protocol(path):
    _fill(path)
    with mmapdict(path, readonly=True) as m:
        lz = m.lazy("c")
        assert np.asarray(lz, dtype=np.float64).dtype == np.float64
        assert np.array_equal(lz.__array__(np.float64), m["c"])
        assert not lz.__array__().flags.writeable  # a view of the read-only mapping
        c = lz.__array__(copy=True)
        c[0, 0, 0] = 99  # a copy of its own
        assert lz[0, 0, 0] == 0
        assert not lz.__array__(copy=False).flags.writeable
        with pytest.raises(ValueError, match="without a copy"):
            lz.__array__(np.float64, copy=False)
        if np.__version__.startswith("2"):
            assert np.array(lz, copy=True).flags.writeable
        assert np.sum(lz) == np.arange(30).sum()


def test_what_lazy_refuses(path):
    _fill(path)
    with mmapdict(path, readonly=True) as m:
        with pytest.raises(TypeError, match="masked array"):
            m.lazy("masked")
        with pytest.raises(TypeError, match="not an array"):
            m.lazy("meta")
        with pytest.raises(KeyError):
            m.lazy("absent")
        with pytest.raises(TypeError):
            m.lazy(3)
    # A file object without a name: usable here, not picklable.
    with open(path, "rb") as f:
        data = f.read()
    with tempfile.TemporaryFile() as t:
        t.write(data)
        t.flush()
        with mmapdict(t, readonly=True) as m:
            lz = m.lazy("c")
            assert np.array_equal(lz[1], m["c"][1])
            with pytest.raises(pickle.PicklingError, match="open the mmapdict by path"):
                pickle.dumps(lz)


def test_pickles_by_reference(path):
    with mmapdict(path) as m:
        m["big"] = EmptyNDArray((1024, 1024), np.float64)  # 8 MiB
        m["big"][7] = 7.0
        m["small"] = np.zeros(3)
    with mmapdict(path, readonly=True) as m:
        big, small = pickle.dumps(m.lazy("big")), pickle.dumps(m.lazy("small"))
        assert len(big) < 1024 and abs(len(big) - len(small)) < 16  # not the data: the same size whatever the array's
        assert len(pickle.dumps(m["big"])) > 8 * MiB  # a memmap pickles by value
        assert b"cube" not in big and os.path.abspath(path).encode() in big
        back = pickle.loads(big)
        assert back._array is None  # not mapped until read
        assert back[7, 3] == 7.0 and back._array is not None
        # Relative paths travel as absolute ones (a worker's directory is its own).
        d, base = os.path.split(path)
        old = os.getcwd()
        os.chdir(d)
        try:
            with mmapdict(base, readonly=True) as rel:
                p = pickle.dumps(rel.lazy("big"))
        finally:
            os.chdir(old)
        assert pickle.loads(p)[7, 0] == 7.0


def test_dask_token_is_cheap_and_deterministic(path):
    tokenize = require("dask.base").tokenize
    _fill(path)
    with mmapdict(path, readonly=True) as m:
        lz = m.lazy("c")
        lz._array = lz._array.view(_Tripwire)  # tokenizing must not read or pickle the data
        t = tokenize(lz)
        assert t == tokenize(m.lazy("c")) == tokenize(pickle.loads(pickle.dumps(lz)))
        assert t != tokenize(m.lazy("f"))
    with mmapdict(path) as m:
        m["c"] = np.ones((2, 3, 5), "<f4")  # replaced: another entry, another token
        assert tokenize(m.lazy("c")) != t


class _Tripwire(np.ndarray):
    """An array that refuses to be pickled: a test's proof that the data of
    a lazy array's mapping never travels."""

    def __reduce__(self):
        raise AssertionError("the array's data was pickled")

    def __reduce_ex__(self, protocol):
        raise AssertionError("the array's data was pickled")


_CHILD = r"""
import pickle, sys
import numpy as np
lz = pickle.loads(sys.stdin.buffer.read())
try:
    a = lz[...]
except Exception as e:
    print(type(e).__name__, "|", e)
    sys.exit(3)
print("ok", float(np.asarray(a, dtype=np.float64).sum()))
"""


def _in_child(blob):
    """Unpickles a lazy array in a fresh process and reads it whole: its
    exit status and what it printed (a crash would be a signal)."""
    r = subprocess.run([sys.executable, "-c", _CHILD], input=blob, capture_output=True, timeout=60)
    assert r.returncode in (0, 3), (r.returncode, r.stderr.decode()[-2000:])
    return r.returncode, r.stdout.decode().strip()


def _changes():
    """(name, change to the file after the lazy array was pickled (given
    the lazy array made before), what the child must say): every way the key
    can stop describing the entry."""
    def replaced(p, before):
        with mmapdict(p) as m:
            m["c"] = np.full((2, 3, 5), 5, "<f4")  # same dtype and shape, other bytes elsewhere

    def replaced_other_shape(p, before):
        with mmapdict(p) as m:
            m["c"] = np.zeros(10, "<f8")

    def deleted(p, before):
        with mmapdict(p) as m:
            del m["c"]

    def now_a_value(p, before):
        with mmapdict(p) as m:
            m["c"] = {"not": "an array"}

    def vacuumed(p, before):
        with mmapdict(p) as m:
            del m["f"]
            m.vacuum()  # "c" keeps its bytes, but in a new file

    def vacuumed_same_offset(p, before):
        with mmapdict(p) as m:
            for k in [k for k in m if k != "c"]:
                del m[k]
            m["c"] = np.full((2, 3, 5), 5, "<f4")
            m.vacuum()  # the new "c" where the old one was (the first key): only the inode tells
            assert m.lazy("c")._ident == before._ident

    def removed(p, before):
        os.remove(p)

    def truncated(p, before):
        with open(p, "r+b") as f:
            f.truncate(200)

    return [("replaced", replaced, "FormatError", "another entry"),
            ("replaced_other_shape", replaced_other_shape, "FormatError", "another entry"),
            ("deleted", deleted, "FormatError", "deleted"),
            ("now_a_value", now_a_value, "FormatError", "another value"),
            ("vacuumed", vacuumed, "FormatError", "replaced"),
            ("vacuumed_same_offset", vacuumed_same_offset, "FormatError", "replaced"),
            ("removed", removed, "FileNotFoundError", "is gone"),
            ("truncated", truncated, "", "")]


@pytest.mark.parametrize("name,change,error,words", _changes(), ids=[c[0] for c in _changes()])
def test_a_changed_entry_raises_in_the_worker(tmp_path, name, change, error, words):
    p = str(tmp_path / "data.mmpkl")
    _fill(p)
    with mmapdict(p, readonly=True) as m:
        blob = pickle.dumps(m.lazy("c"))
        here = m.lazy("c")  # mapped now: reads the entry it was made of
    assert _in_child(blob) == (0, f"ok {float(np.arange(30).sum())}")  # unchanged: reads
    change(p, here)
    code, out = _in_child(blob)
    assert code == 3, out  # never reads other bytes
    if error:
        kind, msg = out.split(" | ", 1)
        assert kind == error and words in msg and repr("c") in msg and p in msg, out
    else:  # a torn file: refused at open, whatever words libmmp finds
        assert out.split(" | ")[0] in ("FormatError", "ValueError"), out
    if name not in ("truncated",):
        assert np.array_equal(here[...], np.arange(30, dtype="<f4").reshape(2, 3, 5))


def _sum_in_fork(lz):
    return float(np.asarray(lz[...], dtype=np.float64).sum())


def _lazy_in_fork(p):
    """m.lazy in a forked process (libmmp through its helper process, which
    hands out no descriptor): by path, and on a file object."""
    with mmapdict(p, readonly=True) as m:
        lz = m.lazy("c")
        by_path = float(lz[1].sum()), len(pickle.dumps(lz))
    with open(p, "rb") as f, mmapdict(f) as m:
        lz = m.lazy("c")
        assert not f.closed and f.tell() == 0
        by_file = float(lz[1].sum()), len(pickle.dumps(lz))
    return by_path, by_file


def test_forked_workers(path):
    import multiprocessing
    _fill(path)
    with mmapdict(path, readonly=True) as m:
        lz = m.lazy("c")
        with multiprocessing.get_context("fork").Pool(1) as pool:
            assert pool.map(_sum_in_fork, [lz]) == [float(np.arange(30).sum())]
            by_path, by_file = pool.apply(_lazy_in_fork, (path,))
    for s, n in (by_path, by_file):
        assert s == float(np.arange(15, 30).sum()) and n < 1024


def test_dask_distributed_moves_no_array_data(tmp_path):
    """dask.array.from_array(m.lazy(key)) on a LocalCluster of processes:
    the graph and the workers' transfers carry no array data; the same with
    m[key] (a memmap, pickled by value) carries all of it."""
    da = require("dask.array")
    distributed = require("dask.distributed")  # "dask" in MMP_REQUIRE: a failure, not a skip, without distributed
    import cloudpickle

    p = str(tmp_path / "cube.mmpkl")
    shape = (64, 256, 512)  # 32 MiB of float32
    with mmapdict(p) as m:
        m["cube"] = EmptyNDArray(shape, np.float32)
        cube = m["cube"]
        for i in range(0, shape[0], 8):
            cube[i:i + 8] = (np.arange(i, i + 8, dtype=np.float32)[:, None, None] + np.arange(shape[2], dtype=np.float32))
        cube.flush()
        del cube
    want = np.asarray(mmapdict(p, readonly=True)["cube"], dtype=np.float64)
    want_mean, want_slice = want.mean(), want[10:50, 3, ::7].sum()

    with mmapdict(p, readonly=True) as m:
        lz = m.lazy("cube")
        x = da.from_array(lz, chunks=(8, 256, 512))  # 8 tasks of 4 MiB
        lz._array = lz._array.view(_Tripwire)  # the mapping here must never be pickled
        ntasks = x.npartitions
        graph = cloudpickle.dumps(dict(x.__dask_graph__()))
        mm_graph = cloudpickle.dumps(dict(da.from_array(m["cube"], chunks=(8, 256, 512)).__dask_graph__()))
        print(f"\npickled graph of from_array: m.lazy(key) {len(graph)} bytes, m[key] (memmap) {len(mm_graph)} bytes "
              f"({len(mm_graph) / max(len(graph), 1):.0f}x); the array is {want.size * 4} bytes in {ntasks} chunks")
        assert len(graph) < ntasks * 4096 and len(graph) / ntasks < MiB
        assert len(mm_graph) > want.size * 4  # by value: every byte
        # Threads, in this process: the same numbers.
        assert np.isclose(x.mean(dtype=np.float64).compute(scheduler="threads"), want_mean)

        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            got_mean = client.compute(x.mean(dtype=np.float64)).result()
            got_slice = client.compute(x[10:50, 3, ::7].sum(dtype=np.float64)).result()
            moved = sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total).values())
            print(f"dask.distributed over m.lazy(key): {moved} bytes moved between workers for "
                  f"{ntasks} chunks of {want.size * 4 // ntasks} bytes")
            assert np.isclose(got_mean, want_mean) and np.isclose(got_slice, want_slice)
            assert moved / ntasks < MiB
            # The memmap, for the log: its graph carries the data.
            before = moved
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Sending large graph")  # what it says
                got = client.compute(da.from_array(m["cube"], chunks=(8, 256, 512)).mean(dtype=np.float64)).result()
            assert np.isclose(got, want_mean)
            moved = sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total).values())
            print(f"dask.distributed over m[key]: a {len(mm_graph)}-byte graph sent to the scheduler, "
                  f"{moved - before} bytes moved between workers")
