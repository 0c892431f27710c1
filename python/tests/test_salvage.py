"""mmpbridge.salvage: the entries of a damaged file that read and verify on
their own go to a new file that plain pickle.load loads; the rest is
reported by key and offset. The damaged files are salvaged in a child
process (a crash cannot take the runner down)."""
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

import mmpbridge
from helpers import plain_load, same
from mmpbridge import EmptyNDArray, mmapdict

KEYS = ["key_ints", "key_text", "key_meta", "key_f32", "key_reserved", "key_last"]


def _original(path):
    with mmapdict(path) as m:
        m["key_ints"] = np.arange(1000, dtype=np.int64) ** 2
        m["key_text"] = "hello " * 40
        m["key_meta"] = {"name": "x", "xs": [1.5, True, None], "t": (1, "a")}
        m["key_f32"] = np.linspace(0, 1, 3000, dtype=np.float32)
        m["key_reserved"] = EmptyNDArray((100, 50), np.float32)
        m["key_reserved"][3] = 7.5
        m["key_last"] = 42


def _entry_offset(b, key):
    k = key.encode()
    i = b.index(bytes([0x8C, len(k)]) + k)
    return i - 9


def _damage(b, key, kind, rng):
    """Damage key's entry in one of several ways; returns the bytes and
    whether entries after it are cut off too."""
    b = bytearray(b)
    off = _entry_offset(b, key)
    n = int.from_bytes(b[off + 1:off + 9], "little")
    end = off + 9 + n
    if kind == "frame opcode":
        b[off] ^= 1 + rng.randrange(255)
    elif kind == "frame length":
        b[off + 1 + rng.randrange(8)] ^= 1 + rng.randrange(255)
    elif kind == "delete frame header":
        del b[off:off + 9]
    elif kind == "trailer":
        i = end - 8 + rng.choice([0, 5, 7])
        b[i] ^= 1 + rng.randrange(255)
    elif kind == "overwrite head":
        for i in range(off, off + 20):
            b[i] = rng.randrange(256)
    elif kind == "truncate":
        return bytes(b[:off + rng.randrange(1, n + 9)]), True
    return bytes(b), False


_CHILD = r"""
import json, pickle, sys
import mmpbridge
pairs, orig = json.loads(sys.argv[1]), sys.argv[2]
sys.path.insert(0, sys.argv[3])
from helpers import same
with open(orig, "rb") as f:
    o = pickle.load(f)
res = []
for bad, out in pairs:
    rep = mmpbridge.salvage(bad, out)
    with open(out, "rb") as f:
        d = pickle.load(f)
    res.append({"saved": [s["key"] for s in rep["saved"]], "lost": rep["lost"], "loaded": sorted(d),
                "differ": [k for k in d if not same(d[k], o.get(k))]})
print(json.dumps(res))
"""


@pytest.mark.parametrize("kind", ["frame opcode", "frame length", "delete frame header", "trailer",
                                  "overwrite head", "truncate"])
def test_salvage_damaged(tmp_path, kind):
    orig = tmp_path / "orig.mmpkl"
    _original(str(orig))
    b = orig.read_bytes()
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    pairs, cuts = [], []
    for seed, key in enumerate(KEYS):
        rng = random.Random(f"{kind}/{seed}")
        bad_bytes, cut = _damage(b, key, kind, rng)
        bad = tmp_path / f"bad-{seed}.mmpkl"
        bad.write_bytes(bad_bytes)
        pairs.append((str(bad), str(tmp_path / f"out-{seed}.mmpkl")))
        cuts.append(cut)
    p = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(pairs), str(orig), tests_dir],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (kind, p.returncode, p.stderr[-2000:])
    for key, cut, r in zip(KEYS, cuts, json.loads(p.stdout)):
        assert r["differ"] == [], (kind, key, r)
        assert r["loaded"] == sorted(r["saved"])
        before = KEYS[:KEYS.index(key)]
        after = [] if cut else KEYS[KEYS.index(key) + 1:]
        for k in before + after:
            assert k in r["saved"], (kind, key, k, r)
        lost = {l["key"] for l in r["lost"]}
        assert key in r["saved"] or key in lost or None in lost, (kind, key, r)
        for l in r["lost"]:
            assert isinstance(l["offset"], int) and l["cause"], l


def test_salvage_api(tmp_path):
    orig = tmp_path / "orig.mmpkl"
    _original(str(orig))
    b = bytearray(orig.read_bytes())
    off = _entry_offset(b, "key_meta")
    b[off] = 0
    bad = tmp_path / "bad.mmpkl"
    bad.write_bytes(bytes(b))
    out = tmp_path / "out.mmpkl"
    rep = mmpbridge.salvage(bad, out)
    assert not rep["ok"]
    assert [s["key"] for s in rep["saved"]] == [k for k in KEYS if k != "key_meta"]
    assert rep["lost"][0]["offset"] == off and rep["lost"][0]["cause"]
    d = plain_load(out)
    o = plain_load(orig)
    assert list(d) == [k for k in KEYS if k != "key_meta"]
    assert all(same(d[k], o[k]) for k in d)
    with mmapdict(str(out), readonly=True) as m:
        assert m["key_reserved"][3, 0] == 7.5
    with pytest.raises(OSError):
        mmpbridge.salvage(bad, out)  # exists
    rep = mmpbridge.salvage(orig, out, force=True)
    assert rep["ok"] and len(rep["saved"]) == len(KEYS)
    with pytest.raises(ValueError):
        mmpbridge.salvage(bad, tmp_path / "x.mmpkl", align=3)
    with pytest.raises(ValueError):
        mmpbridge.salvage(bad, bad, force=True)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not an mmappickle file" * 10)
    with pytest.raises(mmpbridge._lib.FormatError):
        mmpbridge.salvage(junk, tmp_path / "never.mmpkl")
    assert not (tmp_path / "never.mmpkl").exists() and not (tmp_path / "x.mmpkl").exists()
