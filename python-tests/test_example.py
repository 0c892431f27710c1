"""The README's ctypes example (example_ctypes.py) runs and prints what the
file holds."""
import subprocess
import sys
from pathlib import Path

import numpy as np

from mmphelpers import CORPUS

EXAMPLE = Path(__file__).parent / "example_ctypes.py"


def run_example(tools, path):
    r = subprocess.run([sys.executable, EXAMPLE, tools["libmmp"], path], capture_output=True, text=True, timeout=60)
    return r


def test_example_on_converted_file(tmp_path, tools, mmpconv):
    np.savez(tmp_path / "in.npz", temps=np.array([21.5, 22.0, 19.25, 18.0]), grid=np.arange(12, dtype="<i4").reshape(3, 4))
    mmpconv("convert", "--quiet", tmp_path / "in.npz", tmp_path / "data.mmpkl")
    r = run_example(tools, tmp_path / "data.mmpkl")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "temps float64 (4,) [21.5  22.   19.25]",
        "grid int32 (3, 4) [0 1 2]",
    ]


def test_example_on_reference_files(tools):
    r = run_example(tools, CORPUS / "portable" / "masked.mmpkl")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["m1 masked", "m2 masked", "plain float64 (2,) [1. 2.]"] or \
        r.stdout.splitlines()[:2] == ["m1 masked", "m2 masked"]
    r = run_example(tools, CORPUS / "portable" / "shapes.mmpkl")
    assert r.returncode == 0, r.stderr
    assert "empty float64 (0,) []" in r.stdout.splitlines()


def test_example_error(tools, tmp_path):
    r = run_example(tools, tmp_path / "missing.mmpkl")
    assert r.returncode == 1
    assert "missing.mmpkl" in r.stderr and "no such file" in r.stderr
