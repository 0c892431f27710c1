"""mmapdict(url): files on an HTTP server, read-only, through libmmp's
remote reader. The server here is a static one of the test's own that
honours Range, ETag and If-Match as nginx does, and counts what it sends."""
import email.utils
import io
import os
import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import mmpbridge
from helpers import require, same


class RangeHandler(BaseHTTPRequestHandler):
    root = None
    sent = None  # [requests, bytes]

    def log_message(self, *args):
        pass

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
        with open(path, "rb") as f:
            data = f.read()
        rng = self.headers.get("Range")
        start, end = 0, len(data) - 1
        if rng:
            a, b = rng.split("=")[1].split("-")
            start, end = int(a), min(int(b), len(data) - 1)
        body = data[start:end + 1]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        self.end_headers()
        self.wfile.write(body)
        self.sent[0] += 1
        self.sent[1] += len(body)


@pytest.fixture
def served(tmp_path):
    """A file written by mmpbridge, served; returns (url, local dict, counter)."""
    path = tmp_path / "f.mmpkl"
    rng = np.random.default_rng(5)
    with mmpbridge.mmapdict(str(path)) as m:
        m["c"] = rng.standard_normal((300, 7))
        m["f"] = np.asfortranarray(rng.integers(-9, 9, (40, 6, 5)).astype(">i2"))
        m["cube"] = rng.standard_normal((64, 128, 32)).astype("f4")  # 1 MiB
        m["zero_d"] = np.array(2.5)
        m["empty"] = np.zeros((0, 4))
        m["masked"] = np.ma.MaskedArray([1.0, 2.0, 3.0], mask=[False, True, False], fill_value=-1.0)
        m["meta"] = {"gain": 1.5, "tags": ["a", "b"]}
    handler = type("H", (RangeHandler,), {"root": str(tmp_path), "sent": [0, 0]})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/f.mmpkl", mmpbridge.mmapdict(str(path), readonly=True), handler.sent
    srv.shutdown()


def test_remote_reads_as_local(served):
    url, local, _ = served
    m = mmpbridge.mmapdict(url)
    assert isinstance(m, mmpbridge.remotedict) and not m.writable
    assert list(m) == list(local) and len(m) == len(local)
    for k in local:
        assert k in m
        want = local[k]
        if isinstance(want, np.ndarray) and not isinstance(want, np.ma.MaskedArray):
            want = np.asarray(want)
        assert same(m[k], want), k
    assert m["f"].flags.f_contiguous and m["f"].dtype == np.dtype(">i2")
    assert m["masked"].fill_value == -1.0
    assert "nokey" not in m and 3 not in m
    with pytest.raises(KeyError):
        m["nokey"]
    with pytest.raises(TypeError):
        m[3]
    m.close()
    with pytest.raises(ValueError):
        m["c"]


def test_remote_is_read_only(served):
    url, _, _ = served
    m = mmpbridge.mmapdict(url)
    for op in (lambda: m.__setitem__("x", 1), lambda: m.__delitem__("c"), m.vacuum):
        with pytest.raises(io.UnsupportedOperation):
            op()
    with pytest.raises(io.UnsupportedOperation):
        mmpbridge.mmapdict(url, readonly=False)


def test_lazy_slices(served):
    url, local, sent = served
    m = mmpbridge.mmapdict(url)
    for k in ("c", "f", "cube", "zero_d", "empty"):
        lz, want = m.lazy(k), np.asarray(local[k])
        assert (lz.shape, lz.dtype, lz.ndim) == (want.shape, want.dtype, want.ndim)
        keys = [(), Ellipsis]
        if want.ndim:
            n = want.shape[0]
            keys += [0, -1, slice(None), slice(1, 3), slice(2, None, 3), slice(None, None, -1), (Ellipsis, 0),
                     (slice(1, 4), Ellipsis), np.array([0, n - 1]) if n else slice(0, 0), (None, slice(0, 2))]
            if want.ndim > 1:
                keys += [(slice(None), 1), (0, slice(None), Ellipsis), (Ellipsis, slice(0, 2))]
        for key in keys:
            try:
                exp = want[key]
            except IndexError:
                with pytest.raises(IndexError):
                    lz[key]
                continue
            assert same(np.asarray(lz[key]), np.asarray(exp)), (k, key)
    # A leading-axis slice of a C-ordered array moves about its bytes.
    before = m.stats()["bytes"]
    part = m.lazy("cube")[10:20]
    assert same(part, np.asarray(local["cube"])[10:20])
    moved = m.stats()["bytes"] - before
    assert moved <= part.nbytes + (64 << 10), moved
    with pytest.raises(TypeError):
        m.lazy("meta")


def test_dask_over_lazy(served):
    da = require("dask.array")
    url, local, _ = served
    m = mmpbridge.mmapdict(url)
    x = da.from_array(m.lazy("cube"), chunks=(16, 64, 32))
    assert np.isclose(float(x.sum().compute()), float(np.asarray(local["cube"]).sum(dtype=np.float64)), rtol=1e-5)


def test_remote_errors_and_pickling(served):
    url, _, _ = served
    with pytest.raises(OSError, match="404 Not Found"):
        mmpbridge.mmapdict(url.replace("f.mmpkl", "none.mmpkl"))
    m = mmpbridge.mmapdict(url)
    m2 = pickle.loads(pickle.dumps(m))
    assert isinstance(m2, mmpbridge.remotedict) and list(m2) == list(m)


def _remote_sum(args):
    m, k = args
    return float(np.asarray(m.lazy(k)[5:9]).sum())


def test_remote_in_forked_workers(served):
    """Workers (forked: the Go runtime goes through the helper process there)
    read lazily from a remotedict pickled to them."""
    import multiprocessing
    url, local, _ = served
    m = mmpbridge.mmapdict(url)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        got = pool.map(_remote_sum, [(m, "c"), (m, "cube")])
    assert got == [float(np.asarray(local[k])[5:9].sum()) for k in ("c", "cube")]
