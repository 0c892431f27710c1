"""Selections of an array stored in a remote file, as the byte ranges they
need (LazyArray.__getitem__).

A selection (numpy's indexing: ints, slices of any step, Ellipsis,
np.newaxis on any axis; C or Fortran order) is first reduced to its *box*:
per axis, the indices it takes as (first, step, count). The box's elements,
walked in file order over the array's strides, are *runs* of contiguous
bytes: the innermost run is one element, grown by every inner axis taken
whole with step 1 (a C row, a Fortran column, a band of a band-sequential
cube). Runs are then merged into *ranges*, each fetched exactly (no block
rounding, no readahead: libmmp's mmp_remote_read_ranges) by one request, or
pieces of about 8 MiB for a range of 12 MiB or more, a few requests at a
time.

Merging, and why. A request costs about what a block (BLOCK, 64 KiB, the
remote reader's block) costs to transfer, so a gap under a block is cheaper
fetched than skipped, and a gap of a block or more is not fetched. The
goal is: bytes moved <= 1.5 x the selection's bytes + one BLOCK per range,
and a bounded number of requests.

1. A run joins the range before it when the gap is under a block and the
   range stays within the goal on its own (its length <= 1.5 x its
   selected bytes + BLOCK); so after this step the goal holds.
2. If that leaves more than MAX_REQUESTS ranges, the smallest gaps (still
   only those under a block) are merged until MAX_REQUESTS remain: for a
   given number of ranges, merging the smallest gaps moves the fewest
   bytes. Only here can the goal be exceeded, for layouts where the
   selection's bytes are spread thinly over the whole file (one band of a
   band-interleaved-by-pixel cube: 4 bytes every kilobyte; a row of a
   Fortran-ordered cube): there any plan of a few hundred requests moves
   about the whole span, and the only plans within the goal are one
   request per few elements (hundreds of thousands) or per block, which
   move the same bytes in far more requests.

So the requests are at most max(MAX_REQUESTS, 1 + the gaps of a block or
more between runs), plus one per 64 MiB batch past the first (see
below), plus about one per 8 MiB past the first of a range: a selection
needs more than a few hundred requests only when it skips a block or more
that many times, each request then saving at least a block of transfer.

Planning works on at most MAX_RUNS runs (sorting gaps and merging cost
time per run): beyond that the innermost axis' gaps, if under a block, are
filled (what step 2 would do anyway), then, past HARD_RUNS, any gaps.

Advanced (fancy) indexing fetches the bounding box of its index arrays on
the axes they index (a boolean mask: the box of its True elements) and
the selection's own box on the others, then numpy indexes that in memory:
memory and bytes are bounded by the box, not by the array.

The fetched ranges land in a scratch buffer as long as their span, at
their offsets in the file (an anonymous mapping reserving no memory for the
gaps, which are never touched), and numpy's own indexing of a view of the
box over it makes the result, so its shape, order and dtype (byte order
kept) are exactly numpy's. A box that is one range in C or Fortran order
(a C row, a Fortran band, the whole array) is read in place into the
result instead. Ranges spanning more than SCRATCH_LIMIT (64 MiB) are read
in batches, by groups of indices along the box's outermost axis in the
file, each into a scratch of its own (the ranges cut at the groups'
bounds: a request more per group at most), so memory stays the result's
plus about 64 MiB (or one index of that axis, if larger) even where the
plan moves the whole file.
"""
from __future__ import annotations

import mmap
import operator
import sys
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
# (file offset, length, offset at address) rows, the address, its size.
Reader = Callable[[Ints, int, int], None]
# (axis or None, i0, i1, starts, lengths): see Plan.batches.
Batch = Tuple[Optional[int], int, int, Ints, Ints]

BLOCK = 64 << 10
MAX_REQUESTS = 256
PIECE = 8 << 20  # remote reader's large-read piece: a range of 1.5 pieces or more is several requests
MAX_RUNS = 1 << 16
HARD_RUNS = 1 << 20
SCRATCH_LIMIT = 64 << 20
_SMALL_SCRATCH = 4 << 20
_MAP_NORESERVE = 0x4000 if sys.platform.startswith("linux") else 0


class Plan:
    """A selection's box, the key numpy applies to the box, and the byte
    ranges (file offset, length) it needs, sorted and disjoint."""

    __slots__ = ("shape", "strides", "first", "itemsize", "residual", "starts", "lengths", "selected", "_batches")

    def __init__(self, shape: Tuple[int, ...], strides: Tuple[int, ...], first: int, itemsize: int,
                 residual: Tuple[Any, ...], starts: Ints, lengths: Ints, selected: int) -> None:
        self.shape = shape          # the box's shape
        self.strides = strides      # its byte strides in the file (negative for negative steps)
        self.first = first          # the file offset of its first element
        self.itemsize = itemsize
        self.residual = residual    # the key that gives the result from the box
        self.starts = starts        # int64 array: range offsets in the file
        self.lengths = lengths      # int64 array: range lengths
        self.selected = selected    # the box's bytes
        self._batches: Optional[List[Batch]] = None

    def batches(self) -> List[Batch]:
        """The ranges as they are read: [(axis, i0, i1, starts, lengths)],
        one batch (axis None) when their span is at most SCRATCH_LIMIT,
        else one per group of indices i0:i1 along the box's outermost axis
        in the file, the ranges cut to the group's span, so that the
        scratch holding a batch stays about SCRATCH_LIMIT."""
        if self._batches is not None:
            return self._batches
        out: List[Batch] = [(None, 0, 0, self.starts, self.lengths)]
        axes = [ax for ax, n in enumerate(self.shape) if n > 1]
        if len(self.starts) and axes and self.starts[-1] + self.lengths[-1] - self.starts[0] > SCRATCH_LIMIT \
                and not self._direct():
            ax: int = max(axes, key=lambda a: abs(self.strides[a]))
            rows = max(1, SCRATCH_LIMIT // abs(self.strides[ax]))
            ends = self.starts + self.lengths
            out = []
            for i0 in range(0, self.shape[ax], rows):
                i1 = min(self.shape[ax], i0 + rows)
                lo, hi = self._span(ax, i0, i1)
                a, b = np.searchsorted(ends, lo, "right"), np.searchsorted(self.starts, hi, "left")
                s = np.maximum(self.starts[a:b], lo)
                out.append((ax, i0, i1, s, np.minimum(ends[a:b], hi) - s))
        self._batches = out
        return out

    def _span(self, ax: int, i0: int, i1: int) -> Tuple[int, int]:
        """The file bytes [lo, hi) the box's elements i0:i1 along ax lie in."""
        first = self.first + i0 * self.strides[ax]
        lo = hi = first
        for a, (n, st) in enumerate(zip(self.shape, self.strides)):
            n = i1 - i0 if a == ax else n
            lo += min(0, (n - 1) * st)
            hi += max(0, (n - 1) * st)
        return lo, hi + self.itemsize

    def _direct(self) -> bool:
        """Whether the box is one range in C or Fortran order: read in
        place into the result."""
        return len(self.starts) == 1 and int(self.lengths[0]) == self.selected and self.first == int(self.starts[0]) \
            and _contiguous(self.shape, self.strides, self.itemsize) is not None

    @property
    def nranges(self) -> int:
        return sum(len(b[3]) for b in self.batches())

    @property
    def nbytes(self) -> int:
        return sum(int(b[4].sum()) for b in self.batches())

    @property
    def requests(self) -> int:
        """How many requests fetching the ranges takes."""
        return sum(int(np.maximum(1, (b[4] + PIECE // 2) // PIECE).sum()) for b in self.batches())


def _is_int(k: object) -> bool:
    if isinstance(k, (bool, np.bool_)) or isinstance(k, (slice, np.ndarray, list, tuple)) or k is None or k is Ellipsis:
        return False
    try:
        operator.index(k)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def _box(key: Any, shape: Sequence[int]) -> Tuple[List[Tuple[int, int, int]], Tuple[Any, ...]]:
    """(box, residual): per axis (first, step, count) of the indices the
    selection takes, and the key giving the result from the box (same
    structure: Ellipsis and np.newaxis kept). Raises IndexError as numpy
    does."""
    ndim = len(shape)
    key = key if isinstance(key, tuple) else (key,)
    comps: List[Tuple[str, Any]] = []
    used = 0
    ellipses = 0
    for k in key:
        if k is None:
            comps.append(("new", k))
        elif k is Ellipsis:
            ellipses += 1
            comps.append(("ell", k))
        elif isinstance(k, slice):
            comps.append(("slice", k))
            used += 1
        elif _is_int(k):
            comps.append(("int", operator.index(k)))
            used += 1
        else:
            a = np.asarray(k)
            if a.dtype == np.bool_:
                comps.append(("bool", a))
                used += a.ndim
            elif a.dtype.kind in "iu" or (a.size == 0 and a.dtype.kind == "f" and isinstance(k, list)):
                if a.size and a.dtype.kind == "u" and int(a.max()) > np.iinfo(np.intp).max:
                    raise IndexError(f"index {int(a.max())} is out of bounds")
                comps.append(("arr", a.astype(np.intp)))
                used += 1
            else:
                raise IndexError("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and "
                                 "integer or boolean arrays are valid indices")
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if used > ndim:
        raise IndexError(f"too many indices for array: array is {ndim}-dimensional, but {used} were indexed")
    box: List[Tuple[int, int, int]] = [(0, 1, 0)] * ndim
    residual: List[Any] = []
    ax = 0
    for kind, k in comps:
        if kind == "new":
            residual.append(None)
            continue
        if kind == "ell":
            for _ in range(ndim - used):
                box[ax] = (0, 1, shape[ax])
                ax += 1
            residual.append(Ellipsis)
            continue
        if kind == "int":
            n = shape[ax]
            i = k + n if k < 0 else k
            if not 0 <= i < n:
                raise IndexError(f"index {k} is out of bounds for axis {ax} with size {n}")
            box[ax] = (i, 1, 1)
            residual.append(0)
            ax += 1
        elif kind == "slice":
            start, stop, step = k.indices(shape[ax])
            box[ax] = (start, step, len(range(start, stop, step)))
            residual.append(slice(None))
            ax += 1
        elif kind == "arr":
            n = shape[ax]
            if k.size:
                if k.min() < -n or k.max() >= n:
                    bad = k[(k < -n) | (k >= n)].flat[0]
                    raise IndexError(f"index {bad} is out of bounds for axis {ax} with size {n}")
                k = np.where(k < 0, k + n, k)
                lo, hi = int(k.min()), int(k.max())
                box[ax] = (lo, 1, hi - lo + 1)
                residual.append(k - lo)
            else:
                box[ax] = (0, 1, 0)
                residual.append(k)
            ax += 1
        else:  # a boolean mask over k.ndim axes: the box of its True elements
            want = tuple(shape[ax:ax + k.ndim])
            if k.shape != want:
                raise IndexError(f"boolean index did not match indexed array along axis {ax}; "
                                 f"size of axis is {want} but size of corresponding boolean axis is {k.shape}")
            nz = np.nonzero(k) if k.ndim else ()
            cut = []
            for d in range(k.ndim):
                if nz[d].size:
                    lo, hi = int(nz[d].min()), int(nz[d].max())
                else:
                    lo, hi = 0, -1
                box[ax + d] = (lo, 1, hi - lo + 1)
                cut.append(slice(lo, hi + 1))
            residual.append(k[tuple(cut)] if k.ndim else k)
            ax += k.ndim
    while ax < ndim:  # axes the key leaves out are taken whole
        box[ax] = (0, 1, shape[ax])
        ax += 1
        residual.append(slice(None))
    return box, tuple(residual)


def file_strides(shape: Sequence[int], itemsize: int, order: str) -> List[int]:
    """The byte strides of an array of shape, itemsize and order (C or F)."""
    strides = [0] * len(shape)
    acc = itemsize
    for ax in (range(len(shape) - 1, -1, -1) if order == "C" else range(len(shape))):
        strides[ax] = acc
        acc *= shape[ax]
    return strides


def plan(key: Any, shape: Sequence[int], itemsize: int, order: str, offset: int,
         block: int = BLOCK, max_requests: int = MAX_REQUESTS) -> Plan:
    """The Plan of array[key] for an array of shape, itemsize and order
    (C or F) whose bytes start at offset in the file."""
    box, residual = _box(key, shape)
    strides = file_strides(shape, itemsize, order)
    bshape = tuple(n for _, _, n in box)
    bstrides = tuple(step * s for (_, step, _), s in zip(box, strides))
    first = offset + sum(f * s for (f, _, _), s in zip(box, strides))
    selected = itemsize
    for n in bshape:
        selected *= n
    empty = np.zeros(0, np.int64)
    if selected == 0:
        return Plan(bshape, bstrides, first, itemsize, residual, empty, empty, 0)
    # Walk in file order: positive steps from the lowest index, outer axes
    # (largest stride) first; an axis of one index only moves the base.
    base = offset
    axes = []
    for (f, step, n), s in zip(box, strides):
        lo = f if step > 0 else f + (n - 1) * step
        base += lo * s
        if n > 1:
            axes.append((s, abs(step), n))
    axes.sort(key=lambda a: -a[0])
    run = sel = itemsize  # a run's length, and the selected bytes in it
    while axes and axes[-1][1] == 1 and axes[-1][0] == run:
        s, _, n = axes.pop()
        run = sel = run * n
    count = 1
    for _, _, n in axes:
        count *= n
    while axes and count > MAX_RUNS:
        s, t, n = axes[-1]
        if t * s - run >= block and count <= HARD_RUNS:
            break
        axes.pop()  # fill this axis' gaps: n runs become one
        run, sel, count = (n - 1) * t * s + run, sel * n, count // n
    offs = np.full(1, base, dtype=np.int64)
    for s, t, n in axes:
        offs = (offs[:, None] + np.arange(n, dtype=np.int64) * (t * s)).ravel()
    starts, ends = _merge(offs, run, sel, block, max_requests)
    return Plan(bshape, bstrides, first, itemsize, residual, starts, ends - starts, selected)


def _merge(offs: Ints, run: int, sel: int, block: int, max_requests: int) -> Tuple[Ints, Ints]:
    """Ranges (starts, ends) covering runs of length run at sorted offsets
    offs (sel selected bytes in each): steps 1 and 2 of the module's doc."""
    first: List[int] = []
    last: List[int] = []
    got = 0
    for o in offs.tolist():
        if first and o - last[-1] < block and o + run - first[-1] <= 1.5 * (got + sel) + block:
            last[-1] = o + run
            got += sel
            continue
        first.append(o)
        last.append(o + run)
        got = sel
    starts = np.array(first, dtype=np.int64)
    ends = np.array(last, dtype=np.int64)
    extra = len(starts) - max_requests
    if extra > 0:
        gaps = starts[1:] - ends[:-1]
        small = np.flatnonzero(gaps < block)
        if small.size:
            if small.size > extra:
                # Equal gaps are merged evenly over the file (a golden-ratio
                # sequence breaks the ties), so that the ranges come out of
                # about one length and fetch in parallel.
                spread = (small * 0.6180339887498949) % 1.0
                small = small[np.lexsort((spread, gaps[small]))[:extra]]
            join = np.zeros(len(gaps), dtype=bool)
            join[small] = True
            starts = starts[np.concatenate(([True], ~join))]
            ends = ends[np.concatenate((~join, [True]))]
    return starts, ends


def take(p: Plan, dtype: np.dtype[Any], read: Reader) -> Any:
    """numpy's array[key] for the Plan p: read(triples, address, size)
    fills the size bytes at address with the file's ranges, triples an
    int64 array of (file offset, length, offset at address)."""
    if p.selected == 0:
        box = np.empty(p.shape, dtype=dtype)
        return _result(box[p.residual])
    if p._direct():
        # The box is one range in the order of an array: read it in place.
        box = np.empty(p.shape, dtype=dtype, order="F" if _contiguous(p.shape, p.strides, dtype.itemsize) == "F" else "C")
        read(np.array([[p.first, p.selected, 0]], dtype=np.int64), box.ctypes.data, p.selected)
        out = box[p.residual]
        return out.copy() if isinstance(out, np.generic) else out
    batches = p.batches()
    if batches[0][0] is None:
        return _result(_fetch_box(p, dtype, read, p.first, p.shape, batches[0][3], batches[0][4])[p.residual])
    # Batch by batch into the box (in the file's order of axes, as numpy's
    # copy of the box view would be), the scratch dropped after each.
    perm = sorted(range(len(p.shape)), key=lambda a: -abs(p.strides[a]))
    box = np.empty([p.shape[a] for a in perm], dtype=dtype).transpose(np.argsort(perm))
    for axis, i0, i1, starts, lengths in batches:
        ax = int(axis or 0)
        shape = p.shape[:ax] + (i1 - i0,) + p.shape[ax + 1:]
        part = _fetch_box(p, dtype, read, p.first + i0 * p.strides[ax], shape, starts, lengths)
        box[(slice(None),) * ax + (slice(i0, i1),)] = part
        del part
    out = box[p.residual]
    return out.copy() if isinstance(out, np.generic) else out


def _fetch_box(p: Plan, dtype: np.dtype[Any], read: Reader, first: int, shape: Tuple[int, ...],
               starts: Ints, lengths: Ints) -> npt.NDArray[Any]:
    """A view of the box shape of p's strides whose first element is at
    first in the file, over a scratch holding the ranges."""
    lo = int(starts[0])
    span = int(starts[-1] + lengths[-1]) - lo
    scratch: Any
    if span <= _SMALL_SCRATCH or not hasattr(mmap, "MAP_ANONYMOUS"):
        scratch = bytearray(span)
    else:
        scratch = mmap.mmap(-1, span, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE)
    raw = np.frombuffer(scratch, dtype=np.uint8)
    triples = np.empty((len(starts), 3), dtype=np.int64)
    triples[:, 0] = starts
    triples[:, 1] = lengths
    triples[:, 2] = starts - lo
    read(triples, raw.ctypes.data, span)
    return np.ndarray(shape, dtype=dtype, buffer=raw, offset=first - lo, strides=p.strides)


def _contiguous(shape: Sequence[int], strides: Sequence[int], itemsize: int) -> Optional[str]:
    """"C" or "F" when byte strides are those of a contiguous array of
    that order (axes of length 1 aside), else None."""
    for order, axes in (("C", range(len(shape) - 1, -1, -1)), ("F", range(len(shape)))):
        want = itemsize
        for ax in axes:
            if shape[ax] != 1 and strides[ax] != want:
                break
            want *= shape[ax]
        else:
            return order
    return None


def _result(out: Any) -> Any:
    """A copy that owns its memory (the scratch is dropped)."""
    if isinstance(out, np.ndarray):
        return out.copy(order="K")
    return out.copy() if isinstance(out, np.generic) else out
