"""Values other than arrays: pickled by Python, stored verbatim, and
unpickled only as plain data unless trusted."""
import collections
import datetime
import fractions
import pickle

import numpy as np
import pytest

from helpers import plain_load, same
from mmpbridge import NotPlainError, mmapdict

VALUES = {
    "none": None, "bool": True, "int": -12345678901234567890, "float": 1.5, "nan": float("nan"),
    "complex": 1 + 2j, "str": "héllo\ud800"[:5], "bytes": b"\x00\xff", "bytearray": bytearray(b"ab"),
    "list": [1, [2, [3]]], "tuple": (1, (2,)), "set": {1, 2, 3}, "frozenset": frozenset({"a"}),
    "dict": {"a": {"b": [None]}, 1: "int key", (1, 2): "tuple key"},
    "ordered": collections.OrderedDict([("z", 1), ("a", 2)]),
    "range": range(0, 10, 3), "slice": slice(1, None, 2),
    "scalars": [np.float32(1.5), np.int8(-3), np.uint64(2**63), np.bool_(True), np.complex64(1j),
                np.datetime64("2020-01-01T12:00", "m"), np.timedelta64(5, "s"), np.str_("x"), np.bytes_(b"y")],
    "dtype": np.dtype(">f4"), "big": "x" * 200_000, "shared": (lambda l: [l, l])([1, 2]),
}


def test_plain_values_round_trip(path):
    with mmapdict(path) as m:
        for k, v in VALUES.items():
            m[k] = v
        for k, v in VALUES.items():
            assert same(m[k], v), k
    back = plain_load(path)
    assert all(same(back[k], v) for k, v in VALUES.items())
    assert __import__("mmpbridge").verify(path)["ok"]


def test_not_plain_values_need_trust(path):
    with mmapdict(path) as m:
        m["frac"] = fractions.Fraction(1, 3)
        m["date"] = datetime.date(2020, 5, 17)
        m["ok"] = 1
        for k in ("frac", "date"):
            with pytest.raises(pickle.UnpicklingError, match="trusted=True") as e:
                m[k]
            assert isinstance(e.value, NotPlainError)
        assert m["ok"] == 1
    with mmapdict(path, readonly=True, trusted=True) as m:
        assert m["frac"] == fractions.Fraction(1, 3) and m["date"] == datetime.date(2020, 5, 17)
    report = __import__("mmpbridge").verify(path)
    assert not report["ok"] and report["not_allowed"] == 2
    assert __import__("mmpbridge").verify(path, allow=["fractions.Fraction", "datetime.date"])["ok"]


def test_hostile_file_runs_nothing(tmp_path):
    # A pickle that would run a command: the bridge hands out nothing.
    import subprocess
    marker = tmp_path / "pwned"
    class Evil:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(marker)],))
    p = str(tmp_path / "evil.mmpkl")
    with mmapdict(p) as m:
        m["x"] = Evil()
    with mmapdict(p) as m:
        with pytest.raises(pickle.UnpicklingError, match="subprocess.call"):
            m["x"]
    assert not marker.exists()


def test_value_replaced_by_array_and_back(path):
    with mmapdict(path) as m:
        m["k"] = {"v": 1}
        m["k"] = np.arange(3)
        assert isinstance(m["k"], np.memmap)
        m["k"] = "text"
        assert m["k"] == "text"
    assert plain_load(path) == {"k": "text"}
