"""Builds the Go binaries the Python tests use, and runs the suite inside the
numpy-2 root. Called by tox.ini (and by conftest.py to build when MMPCONV and
LIBMMP are not set); standard library only.

  toxrun.py build [--nohdf5] OUTDIR
      go build mmpconv, libmmp.so (and its header) and the test helper
      mksparse into OUTDIR. --nohdf5 builds without the HDF5 C library, for
      roots that do not have it.
  toxrun.py chroot --root ROOT --bin OUTDIR [PYTEST ARGS...]
      copies python-tests/, compat/testdata/ and OUTDIR's binaries to a fresh
      directory under ROOT/tmp, runs ROOT's /usr/bin/python3 -m pytest there
      (chroot, as root), and removes the copy whatever happens.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
STAGE_PREFIX = "mmpbridge-tox-"


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
    out = {
        "mmpconv": os.path.join(outdir, "mmpconv"),
        "libmmp": os.path.join(outdir, "libmmp.so"),
        "mksparse": os.path.join(outdir, "mksparse"),
    }
    env = dict(os.environ)
    steps = [
        ([go, "build", *tags, "-o", out["mmpconv"], "./cmd/mmpconv"], env),
        ([go, "build", *tags, "-buildmode=c-shared", "-o", out["libmmp"], "./cgo"], env),
        # Pure Go, static: runs in any root.
        ([go, "build", "-o", out["mksparse"], "./python-tests/testdata/mksparse"], dict(env, CGO_ENABLED="0")),
    ]
    for cmd, e in steps:
        print("toxrun:", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=REPO, env=e, check=True)
    return out


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(tmp):
    """Removes copies left by runs that were killed (their pid is gone)."""
    for name in os.listdir(tmp):
        if not name.startswith(STAGE_PREFIX):
            continue
        pid = name[len(STAGE_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


def run_chroot(root, bindir, pytest_args):
    root = os.path.abspath(root)
    python = os.path.join(root, "usr/bin/python3")
    if not os.access(python, os.X_OK):
        print(f"toxrun: {root} has no usr/bin/python3: run scripts/setup.sh (it builds the numpy-2 root)", file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("toxrun: the numpy-2 environment runs pytest with chroot, which needs root", file=sys.stderr)
        return 1
    tmp = os.path.join(root, "tmp")
    _remove_stale(tmp)
    stage = tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-", dir=tmp)
    # tox stops commands with SIGINT, then SIGTERM: clean up on both.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        os.chmod(stage, 0o755)
        shutil.copytree(HERE, os.path.join(stage, "python-tests"),
                        ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        shutil.copytree(os.path.join(REPO, "compat", "testdata"), os.path.join(stage, "compat", "testdata"))
        os.mkdir(os.path.join(stage, "bin"))
        for name in ("mmpconv", "libmmp.so", "mksparse"):
            shutil.copy2(os.path.join(bindir, name), os.path.join(stage, "bin", name))
        inside = "/" + os.path.relpath(stage, root)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",
            "PYTHONDONTWRITEBYTECODE": "1",
            "MMPCONV": f"{inside}/bin/mmpconv",
            "LIBMMP": f"{inside}/bin/libmmp.so",
            "MKSPARSE": f"{inside}/bin/mksparse",
            "MMP_EXPECT_NUMPY": "2",
            "MMP_ROOT_DESCRIPTION": f"chroot {root}",
        }
        if "CI" in os.environ:
            env["CI"] = os.environ["CI"]
        cmd = ["chroot", root, "/usr/bin/python3", "-m", "pytest", f"{inside}/python-tests",
               "-p", "no:cacheprovider", f"--basetemp={inside}/pytest", *pytest_args]
        print("toxrun:", " ".join(cmd), flush=True)
        return subprocess.run(cmd, env=env).returncode
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def main(argv):
    p = argparse.ArgumentParser(prog="toxrun.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--nohdf5", action="store_true")
    b.add_argument("outdir")
    c = sub.add_parser("chroot")
    c.add_argument("--root", required=True)
    c.add_argument("--bin", required=True)
    c.add_argument("pytest_args", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    if a.cmd == "build":
        build(a.outdir, a.nohdf5)
        return 0
    args = a.pytest_args
    if args[:1] == ["--"]:
        args = args[1:]
    return run_chroot(a.root, a.bin, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
