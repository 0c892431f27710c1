"""Unpickling of the values libmmp hands out: only the callables plain data
uses (libmmp's allow-list, the one mmpbridge.verify applies), so that a file
from someone else cannot make pickle run anything else."""
import io
import pickle

from . import _lib

_ALLOWED = frozenset(_lib.allowed_globals())


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise _lib.NotPlainError(
                f"{module}.{name} is outside the allow-list of plain data "
                "(mmapdict(..., trusted=True) loads such values: only for files you trust)")
        return super().find_class(module, name)


def loads_plain(data):
    """pickle.loads that imports only the allow-list's callables."""
    return _PlainUnpickler(io.BytesIO(data)).load()
