"""Builds the Go binaries the Python tests use; standard library only.
Called by scripts/test.sh (and by conftest.py when MMPCONV, LIBMMP and
MKSPARSE are not set).

  toxrun.py build [--nohdf5] OUTDIR
      go build mmpconv, libmmp.so (and its header) and the test helper
      mksparse into OUTDIR. --nohdf5 builds without the HDF5 C library.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def find_go():
    go = shutil.which("go")
    if go is None and os.access("/usr/local/go/bin/go", os.X_OK):
        go = "/usr/local/go/bin/go"
    if go is None:
        raise SystemExit("toxrun: go not found on PATH nor at /usr/local/go/bin/go")
    return go


def build(outdir, nohdf5=False):
    """Builds mmpconv, libmmp.so and mksparse into outdir; returns their paths."""
    go = find_go()
    os.makedirs(outdir, exist_ok=True)
    tags = ["-tags", "nohdf5"] if nohdf5 else []
    # mmpconv as the README builds it: libhdf5.a linked in where installed.
    static = not nohdf5 and any(glob.glob(p) for p in ("/usr/lib/*/hdf5/serial/libhdf5.a", "/usr/lib/*/libhdf5.a"))
    out = {
        "mmpconv": os.path.join(outdir, "mmpconv"),
        "libmmp": os.path.join(outdir, "libmmp.so"),
        "mksparse": os.path.join(outdir, "mksparse"),
    }
    env = dict(os.environ)
    steps = [
        ([go, "build", *(["-tags", "hdf5static"] if static else tags), "-o", out["mmpconv"], "./cmd/mmpconv"], env),
        ([go, "build", *tags, "-buildmode=c-shared", "-o", out["libmmp"], "./cgo"], env),
        # Pure Go, static: runs in any root.
        ([go, "build", "-o", out["mksparse"], "./python-tests/testdata/mksparse"], dict(env, CGO_ENABLED="0")),
    ]
    for cmd, e in steps:
        print("toxrun:", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=REPO, env=e, check=True)
    return out


def main(argv):
    p = argparse.ArgumentParser(prog="toxrun.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--nohdf5", action="store_true")
    b.add_argument("outdir")
    a = p.parse_args(argv)
    build(a.outdir, a.nohdf5)


if __name__ == "__main__":
    main(sys.argv[1:])
