"""Shared fixtures of the Python tests.

The Go binaries come from the environment (tox builds them first: MMPCONV,
LIBMMP, MKSPARSE) or, when those are not set, are built once per session
into a temporary directory with the go tool. MMP_EXPECT_NUMPY=1 or 2 (set by
tox) makes the session fail unless numpy has that major version, so an
environment can never silently test the wrong numpy.

Tests marked needs_h5py (mmphelpers) run only where h5py imports and mmpconv
converts HDF5, the latter probed once per session: otherwise they skip, with
a banner at the end of the run, or fail when CI is set.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from mmphelpers import H5PY_ERROR, NUMPY_VERSION, ci, h5py, hdf5_probe

# Why the HDF5 tests did not run (None: they ran, or none was selected).
_hdf5_missing = {"reason": None, "skipped": 0}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "needs_h5py: needs h5py and an mmpconv that converts HDF5 (skips without them; fails under CI)")
    want = os.environ.get("MMP_EXPECT_NUMPY")
    if want and str(NUMPY_VERSION[0]) != want:
        raise pytest.UsageError(
            f"MMP_EXPECT_NUMPY={want} but {sys.executable} has numpy {np.__version__}")


def pytest_report_header(config):
    where = os.environ.get("VIRTUAL_ENV", "no virtualenv")
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
def hdf5_support(request, tools, tmp_path_factory):
    """None if mmpconv converts HDF5 here (probed once), else the reason."""
    reason = hdf5_probe(tools["mmpconv"], tmp_path_factory.mktemp("hdf5-probe"))
    if reason is not None:
        reason = f"mmpconv cannot convert HDF5 here: {reason}"
        tr = request.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:  # at once, not only in the summary
            tr.write_line("")
            tr.write_line(f"*** mmpbridge: HDF5 TESTS NOT EXERCISED: {reason}", red=True, bold=True)
    return reason


@pytest.fixture(autouse=True)
def _needs_h5py_gate(request):
    """Skips (or, under CI, fails) a needs_h5py test that cannot run here."""
    if request.node.get_closest_marker("needs_h5py") is None:
        return
    reason = H5PY_ERROR if h5py is None else request.getfixturevalue("hdf5_support")
    if reason is None:
        return
    _hdf5_missing["reason"] = reason
    if ci():
        pytest.fail(f"CI is set, so the HDF5 tests must run: {reason}", pytrace=False)
    _hdf5_missing["skipped"] += 1
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter):
    reason = _hdf5_missing["reason"]
    if reason is None:
        return
    tr = terminalreporter
    what = "failed (CI is set)" if ci() else f"skipped ({_hdf5_missing['skipped']} of them)"
    tr.section("mmpbridge: HDF5 NOT EXERCISED", sep="!", red=True, bold=True)
    tr.write_line(f"The HDF5 tests {what}: {reason}", red=True, bold=True)


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
