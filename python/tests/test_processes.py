"""Several processes on one file: multiprocessing with a pickled mmapdict,
concurrent writers."""
import itertools
import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import plain_load
from mmpbridge import mmapdict


def _increment(args):
    m, i = args
    m["value"][i] += 1


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_increments(path, method):
    # mmappickle's test_concurrent_1: every worker's write lands in the file.
    m = mmapdict(path)
    m["value"] = np.zeros(16)
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(4) as p:
        p.map(_increment, itertools.product([m], range(16)))
        p.map(_increment, itertools.product([m], range(0, 16, 2)))
    want = np.ones(16)
    want[::2] += 1
    assert list(m["value"]) == list(want)
    m.close()
    assert list(plain_load(path)["value"]) == list(want)


def _heavy(args):
    m, j = args
    for i in range(150):
        m[f"w{j}-{i}"] = "x" * 100_000  # enough to make the Go core collect garbage
        m[f"w{j}-{i}"]
    return j


def test_forked_workers_do_real_work(path):
    # The Go runtime does not survive fork(): a forked worker calling into
    # it directly hangs once Go needs another thread (its garbage collector
    # does). mmpbridge sends a forked process's calls to a helper process.
    m = mmapdict(path)
    m["seed"] = "x" * 100_000
    with multiprocessing.get_context("fork").Pool(3) as p:
        assert sorted(p.map_async(_heavy, [(m, j) for j in range(3)]).get(timeout=300)) == [0, 1, 2]
    assert len(m) == 1 + 3 * 150
    m.close()


def test_dict_inherited_through_fork(path):
    m = mmapdict(path)
    m["a"] = np.arange(4)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child uses the dict it inherited
        try:
            m["b"] = int(m["a"][3]) + 1
            os.write(w, b"ok")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 2) == b"ok"
    assert m["b"] == 4


WRITER = """
import sys
sys.path[:0] = sys.argv[4:]
import numpy as np
from mmpbridge import mmapdict
m = mmapdict(sys.argv[1])
for i in range(int(sys.argv[3])):
    m[f"{sys.argv[2]}-{i}"] = np.full(3, i) if i % 2 else {"i": i}
"""


def test_concurrent_writers_lose_nothing(path):
    mmapdict(path).close()
    n, procs = 150, 4
    env = dict(os.environ)
    ps = [subprocess.Popen([sys.executable, "-c", WRITER, path, f"w{j}", str(n), *sys.path]) for j in range(procs)]
    assert all(p.wait() == 0 for p in ps)
    with mmapdict(path, readonly=True) as m:
        assert len(m) == n * procs
        for j in range(procs):
            for i in range(n):
                v = m[f"w{j}-{i}"]
                assert (list(v) == [i] * 3) if i % 2 else v == {"i": i}
    assert len(plain_load(path)) == n * procs


def test_other_process_sees_new_keys(path):
    with mmapdict(path) as m:
        m["a"] = 1
        code = "import sys; sys.path[:0]=sys.argv[2:]; from mmpbridge import mmapdict; m=mmapdict(sys.argv[1]); m['b']=2"
        subprocess.run([sys.executable, "-c", code, path, *sys.path], check=True)
        assert list(m) == ["a", "b"] and m["b"] == 2
