"""Stand-ins of values not allocated in memory (mmappickle.stubs)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, SupportsIndex, Union

import numpy
from numpy.typing import DTypeLike


class EmptyNDArray:
    """An array reserved in the file without being allocated in memory:
    ``m[key] = EmptyNDArray(shape, dtype)`` makes room for it (zeros, a hole
    on most file systems), then ``m[key][...] = ...`` fills it through its
    mapping. As mmappickle.stubs.EmptyNDArray; dtype defaults to float64.
    Raises ValueError for a negative dimension, TypeError for a dtype
    numpy does not know."""

    def __init__(self, shape: Union[int, Sequence[SupportsIndex]], dtype: DTypeLike = numpy.float64) -> None:
        if isinstance(shape, int):
            shape = (shape,)
        self._shape = tuple(int(x) for x in shape)
        if any(x < 0 for x in self._shape):
            raise ValueError(f"negative dimensions are not allowed: {self._shape}")
        self._dtype = numpy.dtype(dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the array."""
        return self._shape

    @property
    def dtype(self) -> numpy.dtype[Any]:
        """The data type of the array."""
        return self._dtype

    def __repr__(self) -> str:
        return f"EmptyNDArray({self._shape}, dtype={self._dtype.str!r})"


__all__ = ["EmptyNDArray"]
