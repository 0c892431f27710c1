"""Builds libmmp.so, the Go core, into the package.

pip install ./python, python -m build python/ and tox all come through here.
The Go sources are the repository's (one directory up), or, in an sdist,
the copy under gosrc/ that `sdist` puts there. The Go toolchain is $GO, go on
PATH, or /usr/local/go/bin/go. HDF5 support (mmpbridge.convert of .h5 files)
is built when pkg-config finds libhdf5, unless MMPBRIDGE_HDF5=0; with
MMPBRIDGE_HDF5=1 it is required.
"""
import os
import re
import shutil
import subprocess
import sysconfig

from setuptools import setup
from setuptools.dist import Distribution
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
GO_PARTS = ["go.mod", "go.sum", "bridge", "pyval", "remote", "convert", "cgo", "internal"]


def go_root():
    for root in (os.path.join(HERE, "gosrc"), os.path.dirname(HERE)):
        if os.path.exists(os.path.join(root, "go.mod")) and os.path.exists(os.path.join(root, "cgo", "exports.go")):
            return root
    raise SystemExit("mmpbridge: the Go sources (go.mod, cgo/) are neither in gosrc/ nor one directory up")


def version():
    with open(os.path.join(go_root(), "internal", "version", "version.go")) as f:
        m = re.search(r'const Version = "([^"]+)"', f.read())
    if not m:
        raise SystemExit("mmpbridge: no version in internal/version/version.go")
    return m.group(1)


def find_go():
    go = os.environ.get("GO") or shutil.which("go")
    if not go and os.access("/usr/local/go/bin/go", os.X_OK):
        go = "/usr/local/go/bin/go"
    if not go:
        raise SystemExit("mmpbridge: building needs the Go toolchain (https://go.dev/dl/): set $GO or put go on PATH")
    return go


def hdf5_tags():
    want = os.environ.get("MMPBRIDGE_HDF5", "")
    if want == "0":
        return ["-tags", "nohdf5"]
    found = shutil.which("pkg-config") and subprocess.run(["pkg-config", "--exists", "hdf5"]).returncode == 0
    if want == "1" and not found:
        raise SystemExit("mmpbridge: MMPBRIDGE_HDF5=1 but pkg-config finds no hdf5 (apt install libhdf5-dev)")
    return [] if found else ["-tags", "nohdf5"]


class BuildWithGo(build_py):
    """build_py, then go build -buildmode=c-shared into the package."""

    def run(self):
        super().run()
        out = os.path.join(os.path.abspath(self.build_lib), "mmpbridge", "libmmp.so")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        cmd = [find_go(), "build", "-trimpath", "-ldflags=-s -w", "-buildmode=c-shared", *hdf5_tags(), "-o", out, "./cgo"]
        print("mmpbridge:", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=go_root(), check=True)
        header = out[:-3] + ".h"
        if os.path.exists(header):
            os.remove(header)


class SdistWithGo(sdist):
    """An sdist that carries the Go sources (gosrc/), so it builds alone."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        root = go_root()
        dst = os.path.join(base_dir, "gosrc")
        for part in GO_PARTS:
            src = os.path.join(root, part)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(dst, part), ignore=shutil.ignore_patterns("*_test.go", "testdata"))
            else:
                os.makedirs(dst, exist_ok=True)
                shutil.copy2(src, os.path.join(dst, part))


class BinaryDistribution(Distribution):
    """A distribution with a platform part (libmmp.so): installed to
    platlib, its wheel not pure."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """The wheel holds a shared library but no Python extension: any Python
    3, this platform."""

    def get_tag(self):
        return "py3", "none", sysconfig.get_platform().replace("-", "_").replace(".", "_")


setup(
    version=version(),
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildWithGo, "sdist": SdistWithGo, "bdist_wheel": PlatformWheel},
    package_data={"mmpbridge": ["libmmp.so", "py.typed"]},
)
