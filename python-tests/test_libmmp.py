"""The C ABI of libmmp.so, through ctypes: handles, errors, zero-copy arrays
that share memory with the file, threads."""
import ctypes
import shutil
import threading

import numpy as np
import pytest

from mmphelpers import CORPUS, assert_same_array, inspect_entries, plain_load
from mmplib import MMPError, as_numpy
from test_convert import npz_members, sample


@pytest.fixture(scope="module")
def converted(tmp_path_factory, tools):
    """A portable-profile file converted from an npz with every dtype and
    shape of test_convert, and the arrays it holds."""
    import subprocess
    d = tmp_path_factory.mktemp("libmmp")
    want = npz_members()
    np.savez(d / "in.npz", **want)
    subprocess.run([tools["mmpconv"], "convert", "--quiet", d / "in.npz", d / "file.mmpkl"], check=True)
    return d / "file.mmpkl", want


def test_keys_entries_arrays(lib, mmpconv, converted):
    path, want = converted
    h = lib.open(path)
    try:
        assert lib.keys(h) == list(want)
        inspected = inspect_entries(mmpconv, path)
        for key, w in want.items():
            # Exactly the text mmpconv inspect --json prints for the key.
            assert lib.entry_text(h, key) == inspected[key]
            e = lib.entry(h, key)
            assert e["kind"] == "array" and e["encoding"] == "portable"
            a = lib.array(h, key)
            # The stored dtype, byte order included (no normalisation here).
            assert a.dtype == w.dtype and a.shape == w.shape, key
            np.testing.assert_array_equal(a, w, err_msg=key)
            assert not a.flags.writeable
            if a.nbytes:
                addr, n = lib.data(h, key)
                assert n == w.nbytes
                assert e["data_offset"] % 64 == 0  # default alignment
                assert a.__array_interface__["data"][0] == addr
        assert lib.last_error() is None  # the last call succeeded
    finally:
        lib.close(h)


def test_arrays_share_memory_with_the_file(lib, converted, tmp_path):
    path = tmp_path / "w.mmpkl"
    shutil.copy(converted[0], path)
    want = converted[1]
    h = lib.open(path, writable=True)
    ro = lib.open(path)
    try:
        a = lib.array(h, "d11", writable=True)  # <f8 (3, 4), Fortran order
        assert a.dtype == np.dtype("<f8")
        a[1, 2] = 1234.5
        a[0, :] = -1
        b = lib.array(h, "d11")
        assert np.shares_memory(a, b) or a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        assert b[1, 2] == 1234.5
        # Another handle (its own mapping of the same file) sees the write.
        assert lib.array(ro, "d11")[1, 2] == 1234.5
        # So does a fresh plain pickle.load, reading the file.
        d = plain_load(path)
        expect = want["d11"].copy()
        expect[1, 2] = 1234.5
        expect[0, :] = -1
        np.testing.assert_array_equal(d["d11"], expect)
        np.testing.assert_array_equal(d["d00"], want["d00"])
        # Big-endian data, written through the mapping in its own byte order.
        c = lib.array(h, "d16", writable=True)  # >i4 (3, 4)
        assert c.dtype.byteorder == ">"
        c[...] = np.arange(c.size).reshape(c.shape)
        np.testing.assert_array_equal(plain_load(path)["d16"], np.arange(c.size).reshape(c.shape))
        del a, b, c
    finally:
        lib.close(h)
        lib.close(ro)


def test_readonly_handle_gives_readonly_mapping(lib, converted):
    h = lib.open(converted[0])
    try:
        addr, n = lib.data(h, "d01")
        assert n == converted[1]["d01"].nbytes
        # The address lies in a read-only mapping: the wrapper must not let
        # numpy write (a write would fault), and the entry says where.
        a = as_numpy(addr, n, lib.entry(h, "d01"), writable=False)
        with pytest.raises(ValueError):
            a[0, 0] = 1
    finally:
        lib.close(h)


def test_empty_arrays(lib):
    h = lib.open(CORPUS / "portable" / "shapes.mmpkl")
    try:
        for key, shape in [("empty", (0,)), ("empty2d", (3, 0))]:
            n = ctypes.c_int64(-1)
            p = lib.lib.mmp_array_data(h, key.encode(), ctypes.byref(n))
            assert p and n.value == 0
            assert lib.array(h, key).shape == shape
    finally:
        lib.close(h)


def test_masked(lib):
    path = CORPUS / "portable" / "masked.mmpkl"
    want = plain_load(path)
    h = lib.open(path)
    try:
        for key in ("m1", "m2"):
            e = lib.entry(h, key)
            assert e["kind"] == "masked"
            assert not lib.lib.mmp_array_data(h, key.encode(), None)
            assert "mmp_masked_data" in lib.last_error()
            m = lib.array(h, key)
            np.testing.assert_array_equal(m.data, want[key].data)
            np.testing.assert_array_equal(m.mask, want[key].mask)
            # data_offset is relative to the file: the same bytes, read plainly.
            raw = path.read_bytes()
            assert raw[e["data"]["data_offset"]:][:e["data"]["nbytes"]] == ctypes.string_at(*lib.data(h, key, 0))
        assert not lib.lib.mmp_masked_data(h, b"m1", 2, None)
        assert "which" in lib.last_error()
    finally:
        lib.close(h)


def test_errors(lib, tmp_path):
    L = lib.lib
    missing = tmp_path / "missing.mmpkl"
    assert L.mmp_open(str(missing).encode(), 0) == 0
    err = lib.last_error()
    assert str(missing) in err and "no such file" in err
    assert lib.last_error() == err  # reading the error does not clear it

    notmmp = tmp_path / "text.mmpkl"
    notmmp.write_bytes(b"hello, not a pickle\n" * 10)
    assert L.mmp_open(str(notmmp).encode(), 0) == 0
    assert "text.mmpkl" in lib.last_error()
    assert L.mmp_open(None, 0) == 0
    assert "NULL" in lib.last_error()

    h = lib.open(CORPUS / "portable" / "values.mmpkl")
    assert lib.last_error() is None  # success clears the thread's error
    assert not L.mmp_array_data(h, b"int", None)
    assert "not an array" in lib.last_error()
    assert lib.entry(h, "int") == {"kind": "value", "json": plain_load(CORPUS / "portable" / "values.mmpkl")["int"], "exact": True}
    assert not L.mmp_entry_json(h, b"no such key")
    assert "key not found" in lib.last_error()
    assert not L.mmp_entry_json(h, None)
    assert not L.mmp_array_data(h, None, None)
    assert L.mmp_close(h) == 0
    # Closed twice, or never issued: an error, not a crash.
    assert L.mmp_close(h) == -1
    assert "invalid handle" in lib.last_error()
    for bad in (0, -1, h + 10**6, 2**62):
        assert L.mmp_close(bad) == -1
        assert not L.mmp_keys_json(bad)
        assert "invalid handle" in lib.last_error()
    with pytest.raises(MMPError, match="invalid handle"):
        lib.keys(h)
    L.mmp_free(None)  # like free(NULL)


def test_convert(lib, tmp_path):
    want = {"a": sample("<f4", (4, 5)), "b": sample(">i8", (3,)), "c": sample("<c16", (2, 2), fortran=True)}
    np.savez_compressed(tmp_path / "in.npz", **want)
    src, dst = str(tmp_path / "in.npz").encode(), str(tmp_path / "out.mmpkl").encode()
    L = lib.lib
    assert L.mmp_convert(src, dst, None) == 0
    assert lib.last_error() is None
    d = plain_load(tmp_path / "out.mmpkl")
    for k, w in want.items():
        assert_same_array(d[k], w, k)
    # As mmpconv convert's exit status: 1 for the input side, 2 for usage.
    assert L.mmp_convert(src, dst, b"{}") == 1
    assert "exists" in lib.last_error()
    assert L.mmp_convert(src, dst, b'{"profile": "portable", "force": true, "align": 4096}') == 0
    h = lib.open(tmp_path / "out.mmpkl")
    try:
        assert all(lib.entry(h, k)["data_offset"] % 4096 == 0 for k in want)
    finally:
        lib.close(h)
    assert L.mmp_convert(src, dst, b'{"profile": "fast"}') == 2
    assert "fast" in lib.last_error()
    assert L.mmp_convert(src, dst, b'{"forse": true}') == 2
    assert "forse" in lib.last_error()
    assert L.mmp_convert(src, dst, b"{not json") == 2
    assert L.mmp_convert(src, str(tmp_path / "out.txt").encode(), b"") == 2
    assert L.mmp_convert(str(tmp_path / "nope.npz").encode(), str(tmp_path / "x.mmpkl").encode(), b"") == 1
    assert L.mmp_convert(None, dst, None) == 2
    # from/to override the extensions; mmpkl -> npy takes the key.
    assert L.mmp_convert(dst, str(tmp_path / "b.data").encode(), b'{"to": "npy", "key": "b"}') == 0
    b = np.load(tmp_path / "b.data", allow_pickle=False)
    assert_same_array(b, want["b"])


def test_threads(lib, converted, tmp_path):
    """Many Python threads in libmmp at once (ctypes releases the GIL): each
    sees its own last error, handles never mix, nothing crashes."""
    path, want = converted
    shared = lib.open(path)
    nthreads, rounds = 8, 40
    barrier = threading.Barrier(nthreads)
    failures = []

    def work(t):
        try:
            barrier.wait()
            for r in range(rounds):
                bad = f"/nonexistent/thread-{t}/round-{r}.mmpkl"
                assert lib.lib.mmp_open(bad.encode(), 0) == 0
                h = lib.open(path, writable=False)
                for hh in (h, shared):
                    key = f"d{(t + r) % 20:02d}"
                    np.testing.assert_array_equal(lib.array(hh, key), want[key])
                    assert lib.keys(hh) == list(want)
                # This thread's error is still its own, whatever the others did.
                assert lib.lib.mmp_close(h) == 0
                assert lib.lib.mmp_close(h) == -1
                err = lib.last_error()
                assert f"handle {h}" in err, err
                assert lib.lib.mmp_open(bad.encode(), 0) == 0
                barrier.wait() if r % 10 == 0 else None
                err = lib.last_error()
                assert bad in err, (bad, err)
        except Exception as e:  # reported below
            failures.append(f"thread {t}: {e!r}")
            barrier.abort()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(nthreads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lib.close(shared)
    assert not failures, failures[:3]


def test_concurrent_close_of_one_handle(lib, converted):
    for _ in range(20):
        h = lib.open(converted[0])
        results = []
        barrier = threading.Barrier(6)

        def close():
            barrier.wait()
            results.append(lib.lib.mmp_close(h))

        threads = [threading.Thread(target=close) for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert sorted(results) == [-1] * 5 + [0]
