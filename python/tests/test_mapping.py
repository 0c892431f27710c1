"""The dict interface, keys and their errors."""
import collections
import io
import itertools
import pickle
import string

import numpy as np
import pytest

from helpers import plain_load, same
from mmpbridge import mmapdict


def test_dict_interface(path):
    m = mmapdict(path)
    m["a"] = 1
    m["b"] = [1, 2]
    m["c"] = np.arange(3)
    assert len(m) == 3
    assert list(m) == ["a", "b", "c"] == list(m.keys())
    assert "a" in m and "z" not in m and 1 not in m
    assert m.get("a") == 1 and m.get("z") is None and m.get("z", 7) == 7
    assert [k for k, _ in m.items()] == ["a", "b", "c"]
    vals = list(m.values())
    assert vals[0] == 1 and vals[1] == [1, 2] and same(np.asarray(vals[2]), np.arange(3))
    d = dict(m)
    assert d["a"] == 1 and isinstance(d["c"], np.memmap)
    m["a"] = "replaced"  # replacing keeps the key's place? no: it moves last, as mmappickle
    assert m["a"] == "replaced"
    del m["b"]
    assert "b" not in m and len(m) == 2
    with pytest.raises(KeyError):
        del m["b"]
    with pytest.raises(KeyError):
        m["b"]
    assert m.pop("c") is not None and "c" not in m
    m.update({"x": 1, "y": 2})
    assert m.setdefault("x", 5) == 1
    m.close()
    assert plain_load(path) == {"a": "replaced", "x": 1, "y": 2}


def test_replace_moves_the_key_last_as_pickle_load_sees_it(path):
    with mmapdict(path) as m:
        m["a"] = 1
        m["b"] = 2
        m["a"] = 3
        assert list(m) == ["b", "a"]
    assert list(plain_load(path)) == ["b", "a"]


@pytest.mark.parametrize("key", [1, 1.5, b"bytes", None, ("t",), "", "x" * 256, "é" * 128, "\ud800", "a\x00b"])
def test_bad_keys_are_type_errors(path, key):
    m = mmapdict(path)
    m["a"] = 1  # a prefix of "a\x00b": C strings must not cut keys
    with pytest.raises(TypeError):
        m[key] = 1
    with pytest.raises(TypeError):
        m[key]
    with pytest.raises(TypeError):
        del m[key]
    assert key not in m
    assert m.get(key) is None and m.get(key, 3) == 3
    assert len(m) == 1


@pytest.mark.parametrize("key", ["a", "x" * 255, "é" * 127, "日本語", "with space", "a/b", "\x7f"])
def test_good_keys(path, key):
    with mmapdict(path) as m:
        m[key] = key
        assert m[key] == key and list(m) == [key]
    assert plain_load(path) == {key: key}


def test_read_only_writes_are_unsupported_operation(path):
    with mmapdict(path) as m:
        m["a"] = np.zeros(2, np.float32)
    m = mmapdict(path, readonly=True)
    for op in (lambda: m.__setitem__("a", 1), lambda: m.__setitem__("new", 1), lambda: m.__delitem__("a")):
        with pytest.raises(io.UnsupportedOperation):
            op()
    with pytest.raises(ValueError):  # numpy's error for a read-only array
        m["a"][0] = 2
    assert m["a"][0] == 0


def test_many_keys_with_big_dicts(path):
    # mmappickle's test_put_opcodes: values with thousands of memo entries.
    d = {"".join(s): "".join(s) for s in itertools.product(string.ascii_letters, repeat=2)}
    with mmapdict(path) as m:
        for i in range(5):
            m[f"test-{i}"] = d
        for i in range(5):
            assert m[f"test-{i}"] == d
    back = plain_load(path)
    assert all(back[f"test-{i}"] == d for i in range(5))


def test_shared_references_and_ordered_dicts(path):
    # mmappickle's test_store_ref.
    obj, obj2 = "1234", "machin"
    dict_a = {obj: obj, "3": obj}
    dict_b = {obj: obj2, obj2: obj2, 2: 4, 4: obj}
    od = collections.OrderedDict([("obj", obj), ("obj2", obj2), (obj, 3)])
    with mmapdict(path) as m:
        m["dict_a"], m["dict_b"], m["od"] = dict_a, dict_b, od
        assert m["dict_a"] == dict_a and m["dict_b"] == dict_b
        got = m["od"]
        assert type(got) is collections.OrderedDict and got == od
        m["od"]["machin"] = "abc"  # a copy: no effect on the file
        assert m["od"] == od
    assert plain_load(path) == {"dict_a": dict_a, "dict_b": dict_b, "od": od}


def test_closed_dict(path):
    m = mmapdict(path)
    m["a"] = 1
    m.close()
    m.close()  # twice is fine
    assert m.closed
    for op in (lambda: m["a"], lambda: len(m), lambda: list(m), lambda: m.__setitem__("a", 2), lambda: m.commit_number):
        with pytest.raises(ValueError, match="closed"):
            op()
    assert "closed" in repr(m)


def test_mmapdict_pickles_by_path(path):
    with mmapdict(path) as m:
        m["a"] = 1
        m2 = pickle.loads(pickle.dumps(m))
        assert m2["a"] == 1 and m2.writable
        m2.close()
    ro = mmapdict(path, readonly=True)
    ro2 = pickle.loads(pickle.dumps(ro))
    assert not ro2.writable


def test_unnamed_mmapdict_does_not_pickle():
    import tempfile
    with tempfile.TemporaryFile() as f:
        m = mmapdict(f)
        with pytest.raises(pickle.PicklingError):
            pickle.dumps(m)
