"""Fixtures of mmpbridge's own tests.

MMP_EXPECT_NUMPY=1 or 2 (tox sets it) makes the session fail unless numpy
has that major version; MMP_EXPECT_MMAPPICKLE=1 (the reference env) fails it
unless mmappickle itself imports, so that the interop tests cannot skip
there.
"""
import os
import sys

import numpy as np
import pytest

import mmpbridge


def pytest_configure(config):
    want = os.environ.get("MMP_EXPECT_NUMPY")
    if want and np.__version__.split(".")[0] != want:
        raise pytest.UsageError(f"MMP_EXPECT_NUMPY={want} but {sys.executable} has numpy {np.__version__}")
    if os.environ.get("MMP_EXPECT_MMAPPICKLE") == "1":
        try:
            import mmappickle  # noqa: F401
        except Exception as e:  # noqa: BLE001
            raise pytest.UsageError(f"MMP_EXPECT_MMAPPICKLE=1 but mmappickle does not import: {e}")


def pytest_report_header(config):
    return [f"mmpbridge {mmpbridge.__version__} from {os.path.dirname(mmpbridge.__file__)}, "
            f"numpy {np.__version__}, Python {sys.version.split()[0]}"]


@pytest.fixture
def path(tmp_path):
    """A path where no file is yet."""
    return str(tmp_path / "data.mmpkl")
