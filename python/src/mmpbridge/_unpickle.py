"""Unpickling of the values libmmp hands out: only the callables plain data
uses (libmmp's allow-list, the one mmpbridge.verify applies), so that a file
from someone else cannot make pickle run anything else.

This is the second wall, not the first: untrusted, mmp_value_pickle hands
out only bytes it proved plain in the same call, from one read of them
(bridge PlainPickle), and plain pickled dicts are converted by libmmp
without any unpickler (mmp_convert_plain). find_class checks names only:
allowed names can still be called with arguments the machine refuses."""
from __future__ import annotations

import io
import pickle
from typing import Any

from . import _lib

_ALLOWED = frozenset(_lib.allowed_globals())


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise _lib.NotPlainError(
                f"{module}.{name} is outside the allow-list of plain data "
                "(mmapdict(..., trusted=True) loads such values: only for files you trust)")
        return super().find_class(module, name)


def loads_plain(data: bytes) -> Any:
    """pickle.loads that imports only the allow-list's callables."""
    return _PlainUnpickler(io.BytesIO(data)).load()
