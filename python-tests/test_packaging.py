"""The Python package as users install it: python -m build python/ makes an
sdist that carries the Go sources and a wheel, built from that sdist, that
carries libmmp.so; the wheel installs and works without the repository.
The wheels for PyPI (scripts/wheels.sh) are test_wheels.py's."""
import os
import subprocess
import sys
import zipfile
import tarfile

import pytest

from mmphelpers import REPO


@pytest.mark.skipif(os.environ.get("MMP_EXPECT_NUMPY") == "1", reason="built once, in the numpy2 environment")
def test_build_sdist_and_wheel(tmp_path):
    pytest.importorskip("build")
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO / "python")], check=True,
                   stdout=subprocess.DEVNULL)
    sdists, wheels = list(out.glob("*.tar.gz")), list(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, list(out.iterdir())
    with tarfile.open(sdists[0]) as t:
        names = t.getnames()
    assert any(n.endswith("/gosrc/go.mod") for n in names) and any(n.endswith("/gosrc/cgo/exports.go") for n in names)
    # mmpconv's sources too: scripts/wheels.sh builds the wheels' mmpconv from the sdist.
    assert any(n.endswith("/gosrc/cmd/mmpconv/main.go") for n in names)
    assert not any(n.endswith("_test.go") or "/testdata/" in n for n in names)
    with zipfile.ZipFile(wheels[0]) as z:
        assert "mmpbridge/libmmp.so" in z.namelist()
        # mmpconv only with MMPBRIDGE_MMPCONV=1 (the manylinux wheels: test_wheels.py)
        assert not any("/scripts/" in n for n in z.namelist()), z.namelist()
    assert wheels[0].name.startswith("mmpbridge-") and "-py3-none-linux" in wheels[0].name
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheels[0])],
                   check=True)
    code = ("import os, sys, numpy as np, mmpbridge\n"
            "assert mmpbridge.__file__.startswith(sys.argv[1]), mmpbridge.__file__\n"
            "p = os.path.join(sys.argv[1], 'x.mmpkl')\n"
            "with mmpbridge.mmapdict(p) as m:\n"
            "    m['a'] = np.arange(3)\n"
            "    assert list(m['a']) == [0, 1, 2]\n"
            "print(mmpbridge.__version__)\n")
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("MMPBRIDGE_LIBMMP", None)
    v = subprocess.run([sys.executable, "-c", code, str(target)], check=True, capture_output=True, text=True,
                       env=env, cwd=str(tmp_path)).stdout.strip()
    assert v and v[0].isdigit()
