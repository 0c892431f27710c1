"""Builds libmmp.so, the Go core, into the package.

pip install ./python, python -m build python/ and tox all come through here.
The Go sources are the repository's (one directory up), or, in an sdist,
the copy under gosrc/ that `sdist` puts there. The Go toolchain is $GO, go on
PATH, or /usr/local/go/bin/go. HDF5 support (mmpbridge.convert of .h5 files)
is built when pkg-config finds libhdf5, unless MMPBRIDGE_HDF5=0; with
MMPBRIDGE_HDF5=1 it is required.

scripts/wheels.sh makes the wheels for PyPI through here too, cross-built
from the sdist; these are for it:
  GOOS, GOARCH, CC    the Go target and cgo's C compiler (passed to go build:
                      zig cc for an old glibc)
  MMPBRIDGE_PLAT      the wheel's platform tag, instead of this machine's
                      (manylinux_2_17_x86_64.manylinux2014_x86_64)
  MMPBRIDGE_MMPCONV=1 also build the mmpconv CLI into the wheel's scripts, so
                      that installing the wheel puts it on PATH (a static,
                      pure-Go binary when built without HDF5)
"""
import os
import re
import shutil
import subprocess
import sysconfig

from setuptools import setup
from setuptools.dist import Distribution
from setuptools.command.build_py import build_py
from distutils.command.build_scripts import build_scripts  # setuptools ships it (setuptools._distutils)
from setuptools.command.sdist import sdist

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
GO_PARTS = ["go.mod", "go.sum", "bridge", "pyval", "remote", "convert", "cgo", "internal", "cmd/mmpconv"]


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


# The end of ErrNoHDF5's message in a build without HDF5 (the wheels): how
# to get HDF5 conversions.
NO_HDF5_HINT = ("this mmpbridge was built without the HDF5 C library; for HDF5 install it from the "
                "source distribution with Go and libhdf5-dev present: pip install --no-binary mmpbridge mmpbridge, "
                "or use an mmpconv built with HDF5")


def hdf5_tags():
    want = os.environ.get("MMPBRIDGE_HDF5", "")
    if want == "0":
        return ["-tags", "nohdf5"]
    found = shutil.which("pkg-config") and subprocess.run(["pkg-config", "--exists", "hdf5"]).returncode == 0
    if want == "1" and not found:
        raise SystemExit("mmpbridge: MMPBRIDGE_HDF5=1 but pkg-config finds no hdf5 (apt install libhdf5-dev)")
    return [] if found else ["-tags", "nohdf5"]


def go_build(out, pkg, *mode, env=None):
    tags = hdf5_tags()
    ldflags = "-s -w"
    if tags:
        ldflags += " -X 'mmpbridge/convert.noHDF5Hint=" + NO_HDF5_HINT + "'"
    cmd = [find_go(), "build", "-trimpath", "-ldflags=" + ldflags, *mode, *tags, "-o", out, pkg]
    print("mmpbridge:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=go_root(), check=True, env=env)


class BuildWithGo(build_py):
    """build_py, then go build -buildmode=c-shared into the package."""

    def run(self):
        super().run()
        out = os.path.join(os.path.abspath(self.build_lib), "mmpbridge", "libmmp.so")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        go_build(out, "./cgo", "-buildmode=c-shared")
        header = out[:-3] + ".h"
        if os.path.exists(header):
            os.remove(header)


def with_mmpconv():
    return os.environ.get("MMPBRIDGE_MMPCONV") == "1"


class BuildMmpconv(build_scripts):
    """The wheel's one script is the mmpconv executable itself, built here
    (as ruff's wheels carry ruff): pip installs it on PATH as it is."""

    def run(self):
        if not with_mmpconv():
            return super().run()
        out = os.path.join(os.path.abspath(self.build_dir), "mmpconv")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        env = dict(os.environ)
        if hdf5_tags():
            env["CGO_ENABLED"] = "0"  # no C at all: a static binary for any Linux
        go_build(out, "./cmd/mmpconv", env=env)
        self.outfiles = [out]


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
        plat = os.environ.get("MMPBRIDGE_PLAT") or sysconfig.get_platform().replace("-", "_").replace(".", "_")
        return "py3", "none", plat


setup(
    version=version(),
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildWithGo, "build_scripts": BuildMmpconv, "sdist": SdistWithGo,
              "bdist_wheel": PlatformWheel},
    package_data={"mmpbridge": ["libmmp.so", "py.typed"]},
    # build_scripts builds it: the name is all that is read here.
    scripts=["mmpconv"] if with_mmpconv() else [],
)
