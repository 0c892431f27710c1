"""Stand-ins of values not allocated in memory (mmappickle.stubs)."""
import numpy


class EmptyNDArray:
    """An array reserved in the file without being allocated in memory:
    ``m[key] = EmptyNDArray(shape, dtype)`` makes room for it (zeros, a hole
    on most file systems), then ``m[key][...] = ...`` fills it through its
    mapping. As mmappickle.stubs.EmptyNDArray; dtype defaults to float64."""

    def __init__(self, shape, dtype=numpy.float64):
        if isinstance(shape, int):
            shape = (shape,)
        self._shape = tuple(int(x) for x in shape)
        if any(x < 0 for x in self._shape):
            raise ValueError(f"negative dimensions are not allowed: {self._shape}")
        self._dtype = numpy.dtype(dtype)

    @property
    def shape(self):
        """The shape of the array."""
        return self._shape

    @property
    def dtype(self):
        """The data type of the array."""
        return self._dtype

    def __repr__(self):
        return f"EmptyNDArray({self._shape}, dtype={self._dtype.str!r})"


__all__ = ["EmptyNDArray"]
