"""Calls mmpbridge's annotations must refuse: test_typing.py runs `mypy
--strict` on this file and wants an error on exactly the lines marked
`# error`, and on no other. If the package were untyped (no annotations,
or no py.typed marker where it is installed), mypy would see Any and pass
them all. Never run."""
from __future__ import annotations

import numpy as np

import mmpbridge
from mmpbridge import EmptyNDArray, FormatError, LazyArray, mmapdict, remotedict

m = mmapdict("scene.mmpkl", readonly=True)
m.no_such_method()  # error
m[3] = np.zeros(3)  # error
mmapdict("scene.mmpkl", profile="fast")  # error
mmapdict("scene.mmpkl", align="64")  # error
mmapdict(3.5)  # error
r: remotedict = mmapdict("scene.mmpkl")  # error
mmpbridge.convert("a.npz", "b.mmpkl", profile="fast")  # error
mmpbridge.convert("a.npz", "b.mmpkl", forse=True)  # error
report: str = mmpbridge.verify("scene.mmpkl")  # error
mmpbridge.salvage(1, "out.mmpkl")  # error
EmptyNDArray(2.5)  # error
shape: str = EmptyNDArray((2, 3)).shape  # error
lazy: LazyArray = remotedict("http://h/x.mmpkl").lazy("cube")
dims: str = lazy.shape  # error
FormatError("no code")  # error
n: str = m.commit_number  # error
ok: int = m.fsck()  # fine: bool is an int
version: bytes = mmpbridge.__version__  # error
