"""Remote selections move only their bytes: LazyArray[key] of a remote
file equals numpy's indexing of the local array, and what the server sends
(counted there: 206 bodies and requests) is the plan's byte ranges, within
the goal: bytes <= 1.5 x the selection's + one block per range, and a
bounded number of requests (see mmpbridge._ranges for the bound and where
the goal cannot be met).

The big cubes are sparse (EmptyNDArray), values written on the lines the
selections cross. MMP_RANGES_CUBE=rows,cols,bands sets their shape (the
default 512,512,256 float32 is 256 MiB each; 1024,2048,256 is the issue's
2 GiB cube, by hand: it prints the numbers with -s)."""
import email.utils
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import mmpbridge
from mmpbridge import _lib, _ranges
from helpers import same

BLOCK, CAP, PIECE = _ranges.BLOCK, _ranges.MAX_REQUESTS, _ranges.PIECE


class SeekingRangeHandler(BaseHTTPRequestHandler):
    """Serves files with Range by seeking (a sparse cube is never read
    whole); counts requests and the bytes of their bodies."""
    protocol_version = "HTTP/1.1"
    root = None
    log = None  # [(start, length)] of every answered request
    lock = None

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # Headers and body are two writes: without this, Nagle and delayed
        # ACKs hold every small answer for 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        path = os.path.join(self.root, os.path.basename(self.path))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        st = os.stat(path)
        etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        if self.headers.get("If-Match") not in (None, etag):
            self.send_error(412)
            return
        rng = self.headers.get("Range")
        if not rng:
            self.send_error(400, "this test server answers ranges only")
            return
        a, b = rng.split("=")[1].split("-")
        start, end = int(a), min(int(b), st.st_size - 1)
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(end + 1 - start)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{st.st_size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        self.end_headers()
        with self.lock:  # before the body: once the client has it, it is counted
            self.log.append((start, len(body)))
        self.wfile.write(body)


def _serve(root):
    handler = type("H", (SeekingRangeHandler,), {"root": str(root), "log": [], "lock": threading.Lock()})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, handler


def _element_offsets(key, shape, itemsize, order):
    """The file offsets (from the array's start) of the elements a[key]
    reads, computed by numpy itself over zero-stride views: independent of
    the planner."""
    total = np.zeros((), dtype=np.int64)
    strides = _ranges.file_strides(shape, itemsize, order)
    for ax, n in enumerate(shape):
        along = np.arange(n, dtype=np.int64) * strides[ax]
        view = np.lib.stride_tricks.as_strided(along, shape=shape,
                                               strides=tuple(8 if i == ax else 0 for i in range(len(shape))))
        total = total + np.asarray(view[key], dtype=np.int64)
    return np.unique(np.asarray(total).ravel())


def _runs(offs, itemsize):
    """(selected bytes, gaps between its contiguous runs)."""
    if offs.size == 0:
        return 0, np.zeros(0, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(offs) != itemsize)
    ends = np.append(offs[breaks], offs[-1]) + itemsize
    starts = np.insert(offs[breaks + 1], 0, offs[0])
    return offs.size * itemsize, starts[1:] - ends[:-1]


def _check_moved(lz, key, local, log):
    """Fetches lz[key]; checks the values against numpy's and the bytes and
    requests the server saw against the plan, the goal and the bound.
    Returns (selected bytes, bytes moved, requests, whether the goal is reachable)."""
    want = np.asarray(local[key])
    p = lz._plan(key)
    del log[:]
    got = lz[key]
    assert same(np.asarray(got), want), key
    moved, requests = sum(n for _, n in log), len(log)
    # Exactly the plan's ranges, nothing read ahead or rounded to blocks.
    assert moved == p.nbytes and requests == p.requests, (key, moved, p.nbytes, requests, p.requests)
    sel, gaps = _runs(_element_offsets(key, lz.shape, lz.dtype.itemsize, "F" if lz._fortran else "C"), lz.dtype.itemsize)
    assert p.selected >= sel
    ranges = p.nranges
    # Requests: at most the cap, or one per skip of a block or more; plus
    # one per further batch (a range cut at a batch's bound).
    assert ranges <= max(CAP, 1 + int((gaps >= BLOCK).sum())) + len(p.batches()) - 1, (key, ranges)
    assert requests <= ranges + moved // PIECE, (key, requests)
    # The least any plan of at most K ranges moves: the selection and every
    # gap but the K - 1 largest. K is the bound's: the cap, or one range per
    # skip of a block or more.
    k = max(CAP, 1 + int((gaps >= BLOCK).sum()))
    least = sel + int(gaps.sum()) - int(np.sort(gaps)[::-1][:k - 1].sum())
    reachable = least <= 1.5 * sel + BLOCK * k
    if reachable:
        assert moved <= 1.5 * sel + BLOCK * ranges, (key, moved, sel, ranges)
    else:
        # Spread thinly over the file: no plan within the bound meets the
        # goal; the plan is within the goal's slack of the least.
        assert moved <= 1.5 * least + BLOCK * ranges, (key, moved, least)
    return sel, moved, requests, reachable


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    path = root / "s.mmpkl"
    rng = np.random.default_rng(11)
    with mmpbridge.mmapdict(str(path)) as m:
        m["c"] = rng.standard_normal((40, 48, 36)).astype("f4")
        m["f"] = np.asfortranarray(rng.integers(-999, 999, (33, 20, 17)).astype(">i2"))
        m["v"] = rng.integers(0, 1 << 40, 1000)
        m["s"] = np.array([(i, i * 0.5) for i in range(60)], dtype=[("a", "<i4"), ("b", ">f8")]).reshape(6, 10)
        m["z"] = np.array(2.5)
        m["e"] = np.zeros((0, 5), dtype="u1")
    srv, handler = _serve(root)
    yield f"http://127.0.0.1:{srv.server_address[1]}/s.mmpkl", mmpbridge.mmapdict(str(path), readonly=True), handler.log
    srv.shutdown()


BASIC = [(), Ellipsis, 0, -1, 3, slice(None), slice(None, None, -1), slice(2, None, 3), slice(-2, 1, -2),
         slice(5, 5), slice(7, 2), (slice(None), 2), (Ellipsis, 1), (1, Ellipsis, 2), (None, 0),
         (slice(None, None, 2), None, slice(None, None, -3)), (slice(1, -1), 0, slice(None, None, 5)),
         (-1, -1, -1), (0, slice(None), None, slice(0, 0)), (slice(None, None, -7), slice(3, 4), Ellipsis),
         (Ellipsis, None), (slice(10 ** 9), slice(-10 ** 9, None, 10 ** 9))]


def _random_keys(rng, shape, count):
    keys = []
    for _ in range(count):
        key = []
        for n in shape:
            c = rng.integers(0, 4)
            if c == 0:
                key.append(int(rng.integers(-n, n)) if n else slice(None))
            elif c == 1:
                key.append(slice(None))
            else:
                a, b = (int(x) for x in rng.integers(-n - 2, n + 2, 2))
                step = int(rng.choice([-5, -2, -1, 1, 2, 3, 16]))
                key.append(slice(a, b, step))
        if rng.integers(0, 4) == 0:
            key.insert(int(rng.integers(0, len(key) + 1)), None)
        keys.append(tuple(key))
    return keys


@pytest.fixture(params=["one batch", "batches of 2 KiB"])
def batches(request, monkeypatch):
    """Plans read in one batch, or (scratch limit 2 KiB) in many: every
    selection goes through the batched path too."""
    if request.param != "one batch":
        monkeypatch.setattr(_ranges, "SCRATCH_LIMIT", 2048)
    return request.param


def test_selections_equal_numpy(small, batches):
    url, local, log = small
    m = mmpbridge.mmapdict(url)
    rng = np.random.default_rng(3)
    for k in ("c", "f", "v", "s", "z", "e"):
        lz, arr = m.lazy(k), local[k]
        keys = BASIC + _random_keys(rng, arr.shape, 60) if arr.ndim else [(), Ellipsis, None, (None, Ellipsis)]
        for key in keys:
            try:
                exp = np.asarray(arr[key])
            except IndexError as e:
                with pytest.raises(IndexError):
                    lz[key]
                assert str(e), key
                continue
            got = lz[key]
            assert same(np.asarray(got), exp), (k, key)
            assert type(got) is type(arr[key]) or isinstance(got, np.ndarray), (k, key, type(got))
            if isinstance(got, np.ndarray) and got.size > 1:
                k_copy = np.array(exp, order="K")
                assert got.flags.c_contiguous == k_copy.flags.c_contiguous and got.flags.writeable, (k, key)
                assert got.base is None or got.base.base is None and got.base.flags.owndata, (k, key)
            if arr.ndim:
                _check_moved(lz, key, arr, log)


FANCY = [[0, 2, 1], np.array([-1, 0]), (slice(None), [3, 1, 3]), ([1, 2], Ellipsis, [0, -1]),
         (0, [2, 5], slice(None, None, 2)), np.array([], dtype=np.intp), ([[1], [2]], [0, 1]),
         (slice(1, 3), np.array(4)), (True, 0), (np.bool_(False), Ellipsis), np.ones(1, dtype=bool)]


def test_fancy_indexing_bounded(small, batches):
    """Advanced indexing equals numpy's and moves no more than the bounding
    box of its index arrays (here at most the box's span)."""
    url, local, log = small
    m = mmpbridge.mmapdict(url)
    for k in ("c", "f"):
        lz, arr = m.lazy(k), local[k]
        mask = np.zeros(arr.shape[:2], dtype=bool)
        mask[3, 4] = mask[5, 2] = True
        for key in FANCY + [mask, (Ellipsis, arr.shape[-1] - 1 > np.arange(arr.shape[-1])), np.zeros(arr.shape, bool)]:
            try:
                exp = np.asarray(arr[key])
            except IndexError:
                with pytest.raises(IndexError):
                    lz[key]
                continue
            del log[:]
            got = lz[key]
            assert same(np.asarray(got), exp), (k, key)
        # A mask of two pixels, and index arrays, move what the box they
        # span moves as a basic selection, not the array.
        for key, box in [(mask, (slice(3, 6), slice(2, 5))), (([1, 7], slice(None), [-1, 2]), (slice(1, 8), slice(None), slice(2, None)))]:
            del log[:]
            lz[key]
            assert sum(n for _, n in log) == lz._plan(box).nbytes < arr.nbytes, (k, key)
    with pytest.raises(IndexError):
        m.lazy("c")[[0, 40]]
    with pytest.raises(IndexError):
        m.lazy("c")[np.zeros(3, dtype=bool)]
    with pytest.raises(IndexError):
        m.lazy("c")[0.5]
    with pytest.raises(IndexError):
        m.lazy("c")[np.array([2 ** 63 + 1], dtype=np.uint64)]


def test_index_errors_as_numpy(small):
    url, local, _ = small
    lz, arr = mmpbridge.mmapdict(url).lazy("c"), local["c"]
    for key in [40, -41, (0, 48), (0, 0, 0, 0), (Ellipsis, Ellipsis), (0, 0, -37)]:
        with pytest.raises(IndexError):
            arr[key]
        with pytest.raises(IndexError):
            lz[key]
    with pytest.raises(ValueError):
        lz[::0]


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    """A C-ordered and a Fortran-ordered float32 cube (rows, cols, bands),
    sparse, with values on the lines the selections below cross."""
    shape = tuple(int(x) for x in os.environ.get("MMP_RANGES_CUBE", "512,512,256").split(","))
    root = tmp_path_factory.mktemp("cubes")
    path = root / "cubes.mmpkl"
    rng = np.random.default_rng(7)
    with mmpbridge.mmapdict(str(path)) as m:
        m["c"] = mmpbridge.EmptyNDArray(shape, dtype="<f4")
        # A Fortran-ordered hole (EmptyNDArray reserves C order).
        _lib.reserve(m._handle(), "f", {"dtype": "<f4", "shape": list(shape), "order": "F"}, True)
        r, c, b = shape
        for k in ("c", "f"):
            a = m[k]
            assert a.flags.f_contiguous == (k == "f")
            # Lines the selections cross, each touching few of the file's
            # pages (a row of the Fortran cube, which has an element on
            # every page, only in part), so the file stays sparse.
            # (This file system may allocate far more than a page per write.)
            row = (r // 3,) if k == "c" else (r // 3, slice(None, None, 97), slice(None, None, 5))
            slab = (slice(None, None, 37), c // 5) if k == "c" else (slice(None), c // 5)
            for key in [row, slab, (r // 2, c // 2), (slice(None, None, 16), slice(None, None, 16), b // 3),
                        (slice(None, None, 61), slice(None, None, 7), b // 3), (slice(-1, None), slice(-3, None))]:
                a[key] = rng.standard_normal(a[key].shape).astype("f4")
            a.flush()
            del a
    srv, handler = _serve(root)
    yield shape, f"http://127.0.0.1:{srv.server_address[1]}/cubes.mmpkl", str(path), handler.log
    srv.shutdown()


def _cube_selections(shape):
    r, c, b = shape
    return [
        ("one band", (slice(None), slice(None), b // 3)),
        ("one row", (r // 3,)),
        ("one column slab", (slice(None), c // 5, slice(None))),
        ("one pixel's spectrum", (r // 2, c // 2, slice(None))),
        ("strided thumbnail", (slice(None, None, 16), slice(None, None, 16), b // 3)),
        ("negative steps", (slice(None, None, -61), slice(None, None, -7), b // 3)),
        ("reversed spectrum", (r // 2, c // 2, slice(None, None, -1))),
        ("corner, reversed", (slice(-1, -3, -1), slice(None, -4, -1), slice(None, None, -2))),
        ("empty", (slice(5, 5), slice(None), 0)),
        ("empty, negative step", (slice(None), slice(0, 3, -1))),
    ]


def test_cube_selections_move_their_bytes(cubes):
    shape, url, path, log = cubes
    m = mmpbridge.mmapdict(url)
    local = mmpbridge.mmapdict(path, readonly=True)
    notes = []
    for k in ("c", "f"):
        lz, arr = m.lazy(k), local[k]
        for name, key in _cube_selections(shape):
            sel, moved, requests, reachable = _check_moved(lz, key, arr, log)
            # Memory: no scratch is larger than a batch's bound.
            p, sizes = lz._plan(key), []
            _ranges.take(p, lz.dtype, lambda t, a, n: sizes.append(n) or _lib.url_read_ranges(m._handle(), t, a, n))
            outer = max((abs(st) for n, st in zip(p.shape, p.strides) if n > 1), default=0)
            assert max(sizes, default=0) <= max(_ranges.SCRATCH_LIMIT, outer) + outer, (k, name, max(sizes))
            notes.append((k, name, sel, moved, requests, lz._plan(key).nranges, reachable))
    print(f"\ncube {shape} float32, {np.prod(shape) * 4 / 2 ** 20:.0f} MiB; block {BLOCK >> 10} KiB, cap {CAP} ranges")
    print(f"{'order':5} {'selection':22} {'selected':>13} {'moved':>13} {'ratio':>8} {'requests':>8} {'ranges':>6}  goal")
    for k, name, sel, moved, requests, ranges, reachable in notes:
        ratio = f"{moved / sel:.2f}" if sel else "-"
        goal = "met" if moved <= 1.5 * sel + BLOCK * ranges else "unreachable within the bound" if not reachable else "MISSED"
        print(f"{k:5} {name:22} {sel:13,} {moved:13,} {ratio:>8} {requests:8} {ranges:6}  {goal}")
    # The layouts the goal is out of reach for are the thin ones: one band
    # of a C-ordered (band-interleaved-by-pixel) cube, one row of a Fortran
    # one; the rest meet it.
    thin = {(k, name) for k, name, *_, reachable in notes if not reachable}
    assert {("c", "one band"), ("f", "one row")} <= thin, thin


def _forked_take(args):
    m, k, key = args
    return m.lazy(k)[key]


def test_selections_in_forked_workers(small):
    """In forked workers (libmmp through the helper process) the ranges
    come back packed and land where the in-process read puts them."""
    import multiprocessing
    url, local, _ = small
    m = mmpbridge.mmapdict(url)
    keys = [("c", (slice(None, None, 3), 5, slice(None, None, -2))), ("f", (Ellipsis, 4)), ("f", (2, slice(None), 1)),
            ("c", ([1, 30], slice(None), 0)), ("v", slice(None, None, -7))]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map(_forked_take, [(m, k, key) for k, key in keys])
    for (k, key), g in zip(keys, got):
        # Compared by value: numpy's pickle of a Fortran-ordered non-native
        # array (the worker's answer) gives it back in native byte order.
        w = np.asarray(local[k][key])
        assert g.shape == w.shape and g.dtype.kind == w.dtype.kind and np.array_equal(g, w), (k, key)


def test_plans_cover_their_elements():
    """Without a server: for random shapes, orders, item sizes and keys,
    every element a[key] reads lies inside one of the plan's ranges, the
    ranges are sorted and disjoint, and a tiny block and cap (which force
    both merging steps) keep the count at the cap unless gaps of a block
    or more need more."""
    rng = np.random.default_rng(23)
    for _ in range(300):
        ndim = int(rng.integers(1, 5))
        shape = tuple(int(n) for n in rng.integers(1, 9, ndim))
        itemsize = int(rng.choice([1, 2, 4, 8, 12]))
        order = str(rng.choice(["C", "F"]))
        block, cap = int(rng.choice([1, 8, 64, BLOCK])), int(rng.integers(1, 6))
        for key in _random_keys(rng, shape, 5):
            offs = 1000 + _element_offsets(key, shape, itemsize, order)
            p = _ranges.plan(key, shape, itemsize, order, 1000, block=block, max_requests=cap)
            starts, ends = p.starts, p.starts + p.lengths
            assert np.all(p.lengths > 0) and np.all(starts[1:] >= ends[:-1]), (shape, order, key)
            i = np.searchsorted(starts, offs, "right") - 1
            assert np.all(i >= 0) and np.all(offs + itemsize <= ends[i]), (shape, order, itemsize, key)
            _, gaps = _runs(offs, itemsize)
            assert len(starts) <= max(cap, 1 + int((gaps >= block).sum())), (shape, order, key, block, cap)


def test_huge_plans_stay_bounded():
    """Selections of arrays far too big to enumerate plan in bounded work:
    the runs are capped (the innermost gaps filled), the ranges too."""
    for shape, itemsize, order, key in [((1 << 16, 1 << 16), 1, "C", (slice(None, None, 2), slice(None, None, 2))),
                                        ((1 << 16, 1 << 16), 1, "F", (slice(None), 7)),
                                        ((1 << 12, 1 << 12, 1 << 10), 4, "C", (slice(None), slice(None), 3)),
                                        ((1 << 12, 1 << 12, 1 << 10), 4, "F", (7,)),
                                        ((1 << 40,), 1, "C", slice(None, None, 1 << 20))]:
        p = _ranges.plan(key, shape, itemsize, order, 0)
        assert p.nranges <= max(CAP, _ranges.HARD_RUNS) and p.nbytes >= p.selected, (shape, key)
