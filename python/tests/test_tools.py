"""mmpbridge.convert, mmpbridge.verify, __version__."""
import os
import re

import numpy as np
import pytest

import mmpbridge
from helpers import CORPUS, plain_load, same
from mmpbridge import mmapdict


def test_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", mmpbridge.__version__)


def test_convert_npz_round_trip(tmp_path):
    arrays = {"a": np.arange(12.).reshape(3, 4), "b": np.array(["x", "yz"]), "c": np.asfortranarray(np.eye(3))}
    np.savez_compressed(tmp_path / "in.npz", **arrays)
    mmpbridge.convert(tmp_path / "in.npz", tmp_path / "out.mmpkl")
    with mmapdict(str(tmp_path / "out.mmpkl"), readonly=True) as m:
        assert list(m) == list(arrays) and all(same(np.asarray(m[k]), v) for k, v in arrays.items())
    assert all(same(plain_load(tmp_path / "out.mmpkl")[k], v) for k, v in arrays.items())
    with pytest.raises(OSError, match="exists"):
        mmpbridge.convert(tmp_path / "in.npz", tmp_path / "out.mmpkl")
    mmpbridge.convert(tmp_path / "in.npz", tmp_path / "out.mmpkl", force=True, profile="mmappickle", align=1)
    mmpbridge.convert(tmp_path / "out.mmpkl", tmp_path / "back.npz")
    with np.load(tmp_path / "back.npz") as z:
        assert all(same(z[k], v) for k, v in arrays.items())


def test_convert_errors(tmp_path):
    with pytest.raises(ValueError, match="profile"):
        mmpbridge.convert(tmp_path / "a.npy", tmp_path / "b.mmpkl", profile="nope")
    with pytest.raises(ValueError, match="align"):
        mmpbridge.convert(tmp_path / "a.npy", tmp_path / "b.mmpkl", align=3)
    with pytest.raises(OSError):
        mmpbridge.convert(tmp_path / "missing.npy", tmp_path / "b.mmpkl")
    np.save(tmp_path / "obj.npy", np.array([1, None], dtype=object), allow_pickle=True)
    with pytest.raises(Exception, match="object"):
        mmpbridge.convert(tmp_path / "obj.npy", tmp_path / "o.mmpkl")
    assert not (tmp_path / "o.mmpkl").exists()


def test_verify(tmp_path):
    rep = mmpbridge.verify(CORPUS / "portable" / "dtypes.mmpkl")
    assert rep["ok"] and rep["not_allowed"] == 0 and rep["findings"]
    evil = tmp_path / "e.mmpkl"
    with mmapdict(str(evil)) as m:
        m["x"] = os.getcwd  # a builtin function: pickled by name
    rep = mmpbridge.verify(evil)
    assert not rep["ok"] and any(f["kind"] == "import" and not f["allowed"] for f in rep["findings"])
    assert mmpbridge.verify(evil, allow=["posix.getcwd"])["ok"]
    with pytest.raises(FileNotFoundError):
        mmpbridge.verify(tmp_path / "missing")
