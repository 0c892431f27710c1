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

The binaries are built on the host (Debian bookworm) with HDF5, so they link
the host's libhdf5 (libhdf5_serial.so.103 and what it needs), which a newer
root does not have (sid has another soname). `chroot` therefore copies every
host library the binaries load (ldd) whose soname the root lacks into the
copy's lib/ and runs pytest with LD_LIBRARY_PATH pointing there. Only sonames
absent from the root are copied, so nothing of the root (its Python, numpy,
h5py, its own libhdf5) is shadowed; glibc's libraries are never copied (the
root's newer glibc serves the binaries, built against an older one).
"""
import argparse
import json
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


# glibc's own libraries: never copied into a root (a root's loader must use
# its own glibc, and bookworm's binaries run on a newer one).
GLIBC_PREFIXES = (
    "ld-linux", "ld64.so", "libc.so", "libpthread.so", "libm.so", "libdl.so", "librt.so",
    "libresolv.so", "libutil.so", "libanl.so", "libnsl.so", "libmvec.so", "libBrokenLocale.so",
    "libnss_", "libthread_db.so", "libc_malloc_debug.so", "libmemusage.so", "libpcprofile.so",
    "linux-vdso.so", "linux-gate.so",
)


def host_libraries(binaries):
    """{soname: host path} of every shared library the binaries load (ldd:
    the whole closure), glibc's included. Fails if ldd cannot resolve one."""
    libs = {}
    for b in binaries:
        r = subprocess.run(["ldd", b], capture_output=True, text=True)
        if r.returncode != 0:
            if "not a dynamic executable" in r.stdout + r.stderr:
                continue
            raise SystemExit(f"toxrun: ldd {b}: exit {r.returncode}: {r.stderr.strip()}")
        for line in r.stdout.splitlines():
            parts = line.split()
            if "=>" in parts:
                i = parts.index("=>")
                name, path = parts[0], parts[i + 1] if len(parts) > i + 1 else "not"
                if path == "not":  # "libfoo.so.1 => not found"
                    raise SystemExit(f"toxrun: ldd {b}: {name} not found on this host")
                if path.startswith("/"):
                    libs.setdefault(name, path)
            elif parts and parts[0].startswith("/"):  # the loader: /lib64/ld-linux-x86-64.so.2 (0x...)
                libs.setdefault(os.path.basename(parts[0]), parts[0])
    return libs


# Runs inside the root: the sonames its loader can find, from its cache
# (ldconfig -p) and its library directories (read inside the chroot, so that
# the root's own /lib -> usr/lib symlinks are followed within it).
_ROOT_SONAMES = r"""
import json, os, subprocess
names = set()
for d in ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
          "/usr/local/lib"):
    try:
        names.update(os.listdir(d))
    except OSError:
        pass
for ldconfig in ("/sbin/ldconfig", "/usr/sbin/ldconfig"):
    if os.access(ldconfig, os.X_OK):
        out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True).stdout
        names.update(l.split()[0] for l in out.splitlines()[1:] if "=>" in l)
        break
print(json.dumps(sorted(names)))
"""


def root_sonames(root):
    r = subprocess.run(["chroot", root, "/usr/bin/python3", "-c", _ROOT_SONAMES],
                       capture_output=True, text=True, env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"})
    if r.returncode != 0:
        raise SystemExit(f"toxrun: listing the libraries of {root} failed: {r.stderr.strip()}")
    return set(json.loads(r.stdout))


def stage_libraries(root, binaries, libdir):
    """Copies into libdir every library the binaries load on the host whose
    soname root lacks (glibc's excepted); returns {soname: host path} copied."""
    have = root_sonames(root)
    copied = {}
    for name, path in sorted(host_libraries(binaries).items()):
        if name in have:
            continue
        if name.startswith(GLIBC_PREFIXES):
            print(f"toxrun: warning: {root} lacks glibc's {name}; not copying the host's", file=sys.stderr)
            continue
        os.makedirs(libdir, exist_ok=True)
        shutil.copy2(os.path.realpath(path), os.path.join(libdir, name))
        copied[name] = path
    return copied


def check_loadable(root, env, inside):
    """Loads libmmp.so (ctypes, the root's Python) and starts mmpconv inside
    the root: says loudly, before pytest, when the loader cannot serve them."""
    checks = [
        ["/usr/bin/python3", "-c", f"import ctypes; ctypes.CDLL({inside + '/bin/libmmp.so'!r})"],
        [f"{inside}/bin/mmpconv", "--help"],
    ]
    ok = True
    for cmd in checks:
        r = subprocess.run(["chroot", root, *cmd], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            ok = False
            print(f"toxrun: WARNING: inside {root}, {' '.join(cmd)} failed (exit {r.returncode}): "
                  f"{(r.stderr or r.stdout).strip()[:2000]}", file=sys.stderr, flush=True)
    return ok


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
        copied = stage_libraries(root, [os.path.join(bindir, n) for n in ("mmpconv", "libmmp.so", "mksparse")],
                                 os.path.join(stage, "lib"))
        if copied:
            print(f"toxrun: host libraries the root lacks, copied to {inside}/lib: {' '.join(copied)}", flush=True)
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
        if copied:
            env["LD_LIBRARY_PATH"] = f"{inside}/lib"
        if "CI" in os.environ:
            env["CI"] = os.environ["CI"]
        check_loadable(root, env, inside)
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
