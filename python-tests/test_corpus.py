"""The reference corpus (compat/testdata: files written by mmappickle 1.0.1)
with plain pickle where the running numpy can, the documented failure of
the mmappickle profile on numpy >= 2.3, and libmmp on every file."""
import ctypes
import hashlib
import json

import numpy as np
import pytest

from mmphelpers import (CORPUS, NUMPY_NO_FROMSTRING, inspect_entries, load_expecting_fromstring_failure,
                        plain_load)


def manifest(profile):
    """The manifest's files, each file's keys in file order (the manifest
    sorts them by name)."""
    with open(CORPUS / profile / "manifest.json") as f:
        files = json.load(f)["files"]
    for m in files.values():
        m["keys"] = dict(sorted(m["keys"].items(), key=lambda kv: kv[1]["entry_offset"]))
    return files


def cases(profile):
    return [pytest.param(profile, name, id=f"{profile}/{name}") for name in sorted(manifest(profile))]


def c_order_sha(a, stored_dtype):
    """sha256 of the array's bytes in C order, in the dtype it was stored
    with (unpickling may have normalised the byte order)."""
    return hashlib.sha256(np.ascontiguousarray(a.astype(stored_dtype, copy=False)).tobytes()).hexdigest()


def check_array(got, m, where):
    assert type(got) is np.ndarray, where
    if got.shape == () and m["shape"] == [1]:
        pass  # the manifest records a 0-d array's shape () as [1]
    else:
        assert got.shape == tuple(m["shape"]), where
    stored = np.dtype(m["dtype"])
    assert got.dtype == stored or got.dtype == stored.newbyteorder("="), (where, got.dtype, stored)
    assert c_order_sha(got, stored) == m["sha256"], where
    assert got.flags.writeable, where


def check_against_manifest(d, keys, where):
    assert list(d) == list(keys), where
    for key, m in keys.items():
        got, w = d[key], f"{where}: {key!r}"
        if m["kind"] == "array":
            check_array(got, m, w)
        elif m["kind"] == "masked":
            assert isinstance(got, np.ma.MaskedArray), w
            check_array(got.data, m["data"], w + " data")
            check_array(np.ma.getmaskarray(got), m["mask"], w + " mask")
        elif "repr" in m:
            assert repr(got) == m["repr"], w


def has_arrays(keys):
    return any(m["kind"] != "value" for m in keys.values())


@pytest.mark.parametrize("profile,name", cases("portable"))
def test_portable_plain_pickle(profile, name):
    """Every portable file loads with plain pickle on numpy 1.x and 2.x,
    warnings as errors."""
    keys = manifest(profile)[name]["keys"]
    d = plain_load(CORPUS / profile / name)
    check_against_manifest(d, keys, name)


@pytest.mark.parametrize("profile,name", cases("mmappickle"))
def test_mmappickle_profile_plain_pickle(profile, name):
    keys = manifest(profile)[name]["keys"]
    path = CORPUS / profile / name
    if not has_arrays(keys):
        check_against_manifest(plain_load(path), keys, name)
        return
    if NUMPY_NO_FROMSTRING:
        # The documented failure: numpy >= 2.3 removed fromstring's binary mode.
        load_expecting_fromstring_failure(path)
        return
    # numpy 1.x loads it, warning that fromstring is deprecated.
    with pytest.warns(DeprecationWarning, match="fromstring"):
        d = plain_load(path, warnings_as_errors=False)
    check_against_manifest(d, keys, name)


@pytest.mark.parametrize("profile,name", cases("portable") + cases("mmappickle"))
def test_libmmp_corpus(lib, mmpconv, profile, name):
    """libmmp reads every reference file, whatever numpy can unpickle:
    entries exactly as mmpconv inspect --json, array bytes as the manifest."""
    keys = manifest(profile)[name]["keys"]
    path = CORPUS / profile / name
    inspected = inspect_entries(mmpconv, path)
    h = lib.open(path)
    try:
        assert lib.keys(h) == list(keys) == list(inspected)
        for key, m in keys.items():
            text = lib.entry_text(h, key)
            assert text == inspected[key], key
            e = json.loads(text)
            assert e["kind"] == m["kind"], key
            if m["kind"] == "array":
                assert e["data_offset"] == m["data_offset"] and e["nbytes"] == m["nbytes"], key
                a = lib.array(h, key)
                assert a.dtype == np.dtype(m["dtype"]), key  # stored byte order, no normalisation
                check_array(a.copy(), m, key)
            elif m["kind"] == "masked":
                for which, part in ((0, "data"), (1, "mask")):
                    addr, n = lib.data(h, key, which)
                    assert e[part]["data_offset"] == m[part]["data_offset"], key
                    assert n == m[part]["nbytes"]
                ma = lib.array(h, key)
                check_array(np.array(ma.data), m["data"], key)
                check_array(np.ma.getmaskarray(ma).copy(), m["mask"], key)
            else:
                assert not lib.lib.mmp_array_data(h, key.encode(), ctypes.byref(ctypes.c_int64()))
                if m.get("json") is not None:
                    assert e["json"] == m["json"], key
    finally:
        lib.close(h)
