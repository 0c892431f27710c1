"""Random dicts of arrays and values: what mmapdict stores, mmapdict and
plain pickle.load give back."""
import os

import numpy as np

from helpers import plain_load, require, same
from mmpbridge import mmapdict

hypothesis = require("hypothesis")
st = require("hypothesis.strategies")
hnp = require("hypothesis.extra.numpy")

DTYPES = st.sampled_from(["?", "i1", "<i2", ">i4", "<i8", "u1", ">u2", "<u8", "<f2", "<f4", ">f8", "<c8", ">c16",
                          "<U3", "S2", "<M8[s]", "<m8[ms]"])
ARRAYS = DTYPES.flatmap(lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
ARRANGED = st.one_of(ARRAYS, ARRAYS.map(np.asfortranarray), ARRAYS.map(lambda a: a[::2] if a.ndim else a))
MASKED = ARRAYS.flatmap(lambda a: hnp.arrays(np.bool_, a.shape).map(lambda k: np.ma.masked_array(a, mask=k)))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
                    st.binary(max_size=20), st.complex_numbers(allow_nan=False))
VALUES = st.recursive(SCALARS, lambda c: st.one_of(st.lists(c, max_size=4), st.tuples(c, c),
                                                    st.dictionaries(st.text(max_size=5), c, max_size=4)), max_leaves=12)
KEYS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=30)
ITEMS = st.dictionaries(KEYS, st.one_of(ARRANGED, MASKED, VALUES), min_size=1, max_size=6)


@hypothesis.settings(max_examples=int(os.environ.get("MMP_EXAMPLES", "60")), deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(items=ITEMS, profile=st.sampled_from(["portable", "portable", "mmappickle"]), align=st.sampled_from([1, 64]))
def test_round_trip(tmp_path_factory, items, profile, align):
    path = str(tmp_path_factory.mktemp("p") / "f.mmpkl")
    with mmapdict(path, profile=profile, align=align) as m:
        for k, v in items.items():
            m[k] = v
        for k, v in items.items():
            got = m[k]
            want = v
            if isinstance(v, np.ndarray) and not isinstance(v, np.ma.MaskedArray):
                got, want = np.asarray(got), v.copy(order="C")
            assert same(got, want), k
    if profile == "portable":
        back = plain_load(path)
        assert list(back) == list(items)
        for k, v in items.items():
            b = back[k]
            if isinstance(v, np.ndarray) and not isinstance(v, np.ma.MaskedArray):
                assert same(np.asarray(b).astype(v.dtype), v.copy(order="C")), k
            elif isinstance(v, np.ma.MaskedArray):  # numpy unpickles in native byte order
                assert same(b.astype(v.dtype), v), k
            else:
                assert same(b, v), k
