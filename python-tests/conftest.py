"""Shared fixtures of the Python tests.

The Go binaries come from the environment (tox builds them first: MMPCONV,
LIBMMP, MKSPARSE) or, when those are not set, are built once per session
into a temporary directory with the go tool. MMP_EXPECT_NUMPY=1 or 2 (set by
tox) makes the session fail unless numpy has that major version, so an
environment can never silently test the wrong numpy.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from mmphelpers import NUMPY_VERSION, h5py


def pytest_configure(config):
    want = os.environ.get("MMP_EXPECT_NUMPY")
    if want and str(NUMPY_VERSION[0]) != want:
        raise pytest.UsageError(
            f"MMP_EXPECT_NUMPY={want} but {sys.executable} has numpy {np.__version__}")


def pytest_report_header(config):
    where = os.environ.get("MMP_ROOT_DESCRIPTION", "host")
    return [
        f"mmpbridge: numpy {np.__version__}, Python {sys.version.split()[0]} ({sys.executable}, {where}), "
        f"h5py {'missing' if h5py is None else h5py.__version__}",
        f"mmpbridge: MMPCONV={os.environ.get('MMPCONV', '(build)')} LIBMMP={os.environ.get('LIBMMP', '(build)')}",
    ]


@pytest.fixture(scope="session")
def tools(tmp_path_factory):
    """Paths of mmpconv, libmmp.so and mksparse."""
    names = {"mmpconv": "MMPCONV", "libmmp": "LIBMMP", "mksparse": "MKSPARSE"}
    paths = {k: os.environ.get(v) for k, v in names.items()}
    if not all(paths.values()):
        import toxrun
        built = toxrun.build(str(tmp_path_factory.mktemp("bin")))
        paths = {k: paths[k] or built[k] for k in names}
    for k, p in paths.items():
        if not os.access(p, os.X_OK if k != "libmmp" else os.R_OK):
            pytest.fail(f"{names[k]}={p}: not found")
    return paths


@pytest.fixture(scope="session")
def lib(tools):
    import mmplib
    return mmplib.Lib(tools["libmmp"])


@pytest.fixture(scope="session")
def mmpconv(tools):
    """run(*args, status=0) runs mmpconv and checks its exit status."""

    def run(*args, status=0):
        r = subprocess.run([tools["mmpconv"], *map(str, args)], capture_output=True, text=True)
        assert r.returncode == status, (
            f"mmpconv {' '.join(map(str, args))}: exit {r.returncode}, want {status}\n"
            f"stderr: {r.stderr}\nstdout: {r.stdout[:2000]}")
        return r

    return run
