"""The wheels PyPI gets (scripts/wheels.sh), as a user without Go gets them:
both pass auditwheel as manylinux_2_17 (or older) with no libhdf5 in them;
the x86_64 one installs with pip into a fresh virtualenv and works there
with Go off PATH, LD_LIBRARY_PATH empty and the machine's libhdf5 hidden
(bound over with /dev/null in a mount namespace, as root; where that cannot
be done, ldd still shows libmmp.so does not need it): the package's own
tests pass against it, the mmpconv it puts on PATH converts the demo sample
to a file that plain pickle.load reads, and converting an HDF5 file says how
to get HDF5.

The wheels are built by scripts/wheels.sh into a temporary directory (with
the Go build cache warm, a minute or two; its tools in
$MMP_CACHE/wheeltools), or taken from $MMP_WHEELS (a directory that holds
both, e.g. dist/ after `bash scripts/wheels.sh`).
"""
import glob
import os
import pickle
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from mmphelpers import REPO, ci, h5py

pytestmark = pytest.mark.skipif(os.environ.get("MMP_EXPECT_NUMPY") == "1",
                                reason="built once, in the numpy2 environment")

ARCHES = ("x86_64", "aarch64")
# The package's tests run against the installed wheel: the Go core through
# the wheel's libmmp.so, its helper process after fork, Ctrl-C, remote files.
PACKAGE_TESTS = ["test_mapping.py", "test_arrays.py", "test_values.py", "test_open.py", "test_tools.py",
                 "test_processes.py", "test_salvage.py", "test_maintenance.py", "test_mmappickle_api.py",
                 "test_interrupt.py", "test_remote.py"]
# What manylinux_2_17 lets a wheel's libraries need (auditwheel's policy).
MANYLINUX_LIBS = {"libc.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libm.so.6", "libresolv.so.2",
                  "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    where = os.environ.get("MMP_WHEELS")
    if not where:
        where = str(tmp_path_factory.mktemp("dist"))
        subprocess.run(["bash", str(REPO / "scripts" / "wheels.sh"), "-o", where, *ARCHES], check=True)
    found = {}
    for arch in ARCHES:
        got = glob.glob(os.path.join(where, f"mmpbridge-*-py3-none-manylinux_2_17_{arch}.manylinux2014_{arch}.whl"))
        assert len(got) == 1, (arch, os.listdir(where))
        found[arch] = got[0]
    return found


def mmp_cache():
    return os.environ.get("MMP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mmpbridge")


def tools_bin(name):
    p = os.path.join(mmp_cache(), "wheeltools", "bin", name)
    assert os.access(p, os.X_OK), f"{p}: scripts/wheels.sh installs it"
    return p


def needed(path):
    """The DT_NEEDED libraries of an ELF file (readelf), and the newest
    GLIBC_ symbol version it asks for (objdump -T)."""
    dyn = subprocess.run(["readelf", "-d", path], check=True, capture_output=True, text=True).stdout
    libs = {line.split("[", 1)[1].split("]", 1)[0] for line in dyn.splitlines() if "(NEEDED)" in line}
    # (a static executable has no dynamic symbols: objdump says so and fails)
    syms = subprocess.run(["objdump", "-T", path], capture_output=True, text=True).stdout
    versions = {tuple(int(x) for x in w[len("GLIBC_"):].split(".")) for w in syms.split()
                if w.startswith("GLIBC_") and w[len("GLIBC_"):].replace(".", "").isdigit()}
    return libs, max(versions, default=())


@pytest.mark.parametrize("arch", ARCHES)
def test_wheel_is_manylinux(wheels, arch, tmp_path):
    whl = wheels[arch]
    show = subprocess.run([tools_bin("auditwheel"), "show", whl], check=True, capture_output=True, text=True).stdout
    flat = " ".join(show.split())
    assert "consistent with the following platform tag: \"manylinux_2_" in flat, show
    tag = flat.split("consistent with the following platform tag: \"", 1)[1].split("\"", 1)[0]
    assert tag.endswith("_" + arch) and int(tag.split("_")[2]) <= 17, show
    assert "requires no external shared libraries" in flat, show
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        z.extractall(tmp_path)
    lib = tmp_path / "mmpbridge" / "libmmp.so"
    scripts = [n for n in names if n.endswith(".data/scripts/mmpconv")]
    assert lib.exists() and len(scripts) == 1, names
    libs, newest = needed(str(lib))
    assert libs <= MANYLINUX_LIBS and not any("hdf5" in x for x in libs), libs
    assert newest <= (2, 17), newest
    machine = {"x86_64": "X86-64", "aarch64": "AArch64"}[arch]
    head = subprocess.run(["readelf", "-h", str(lib)], check=True, capture_output=True, text=True).stdout
    assert machine in head
    # mmpconv is pure Go and static: no interpreter, no libraries.
    cli = tmp_path / scripts[0]
    libs, _ = needed(str(cli))
    assert not libs, libs
    assert "INTERP" not in subprocess.run(["readelf", "-l", str(cli)], check=True, capture_output=True,
                                          text=True).stdout


@pytest.fixture(scope="module")
def venv(wheels, tmp_path_factory):
    """A fresh virtualenv with the x86_64 wheel (and numpy, pytest from
    PyPI), and an environment without Go: PATH is the venv and /usr/bin:/bin
    (Go is in /usr/local/go), LD_LIBRARY_PATH empty, no MMPBRIDGE_LIBMMP."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    py = str(root / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheels["x86_64"],
                    "pytest"], check=True)
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": f"{root / 'bin'}:/usr/bin:/bin", "LD_LIBRARY_PATH": "",
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
    if os.environ.get("CI"):
        env["CI"] = os.environ["CI"]
    assert shutil.which("go", path=env["PATH"]) is None, "go is on the scrubbed PATH"
    return root, py, env


# Runs a command with every libhdf5 of this machine hidden: in a mount
# namespace of its own, /dev/null bound over each file (as root, where
# unshare can; CI runs as root).
HIDE_HDF5 = 'for f in /usr/lib/*/libhdf5* /usr/lib/*/hdf5/*/libhdf5*; do [ -f "$f" ] && mount --bind /dev/null "$f"; done; exec "$@"'


def hdf5_hidden_prefix():
    libs = glob.glob("/usr/lib/*/libhdf5*.so*")
    if not libs or os.geteuid() != 0 or shutil.which("unshare") is None:
        return []
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", HIDE_HDF5, "sh"]
    probe = subprocess.run([*prefix, "sh", "-c", "exec wc -c \"$1\"", "sh", libs[0]], capture_output=True, text=True)
    return prefix if probe.returncode == 0 and probe.stdout.split()[0] == "0" else []


def run(venv, *args, **kw):
    """args in the venv's environment, with libhdf5 hidden where it can be."""
    _, _, env = venv
    return subprocess.run([*hdf5_hidden_prefix(), *args], env=env, capture_output=True, text=True, **kw)


def test_libhdf5_is_hidden_from_the_venv(venv):
    """The hiding works (a root CI): the machine's libhdf5 cannot be loaded
    by what run() starts, so the tests below pass without it."""
    libs = glob.glob("/usr/lib/*/libhdf5*.so*")
    if not hdf5_hidden_prefix():
        (pytest.fail if ci() and libs else pytest.skip)("cannot hide libhdf5 (needs root and unshare)")
    _, py, _ = venv
    code = "import ctypes, sys\ntry:\n    ctypes.CDLL(sys.argv[1])\nexcept OSError as e:\n    print('hidden', e)\n"
    r = run(venv, py, "-c", code, sorted(libs)[0])
    assert r.returncode == 0 and r.stdout.startswith("hidden"), r


def test_installed_wheel_imports_its_own_library(venv, tmp_path):
    root, py, _ = venv
    r = run(venv, py, "-c", "import mmpbridge, mmpbridge._lib as l; print(mmpbridge.__file__); print(l._path)",
            cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    pkg, lib = r.stdout.split()
    assert pkg.startswith(str(root)) and lib.startswith(str(root)), r.stdout
    # libhdf5 is on this machine, yet libmmp.so does not load it.
    ldd = subprocess.run(["ldd", lib], capture_output=True, text=True, check=True).stdout
    assert "hdf5" not in ldd and "not found" not in ldd, ldd


def test_package_tests_pass_against_the_wheel(venv, tmp_path):
    _, py, _ = venv
    tests = [str(REPO / "python" / "tests" / t) for t in PACKAGE_TESTS]
    # From a directory outside the repository: only the installed mmpbridge is importable.
    r = run(venv, py, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'pt'}", *tests,
            cwd=str(tmp_path), timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "failed" not in r.stdout.splitlines()[-1], r.stdout[-2000:]


def test_mmpconv_on_path_converts_the_sample(venv, tmp_path):
    root, py, env = venv
    exe = shutil.which("mmpconv", path=env["PATH"])
    assert exe == str(root / "bin" / "mmpconv")
    v = run(venv, "mmpconv", "--version", cwd=str(tmp_path))
    assert v.returncode == 0 and v.stdout.startswith("mmpconv "), v
    out = tmp_path / "sample.mmpkl"
    r = run(venv, "mmpconv", "convert", str(REPO / "examples" / "sample.npz"), str(out), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    # plain pickle.load, in the venv, without mmpbridge: the sample's arrays
    # (big-endian ones come back in native order, as numpy unpickles them).
    code = ("import pickle, sys\n"
            "d = pickle.load(open(sys.argv[1], 'rb'))\n"
            "assert 'mmpbridge' not in sys.modules\n"
            "sys.stdout.buffer.write(pickle.dumps({k: v.__array__() for k, v in d.items()}, 4))\n")
    p = subprocess.run([py, "-c", code, str(out)], env=env, capture_output=True, check=True)
    got = pickle.loads(p.stdout)
    with np.load(REPO / "examples" / "sample.npz") as want:
        assert sorted(got) == sorted(want.files)
        for k in want.files:
            assert got[k].dtype == want[k].dtype.newbyteorder("=") and np.array_equal(got[k], want[k]), k


def test_hdf5_says_how_to_get_it(venv, tmp_path):
    """The wheels are built without HDF5: both the CLI and the package say
    so, and how to get it, instead of a bare failure."""
    if h5py is None:
        (pytest.fail if ci() else pytest.skip)("h5py is needed to write the HDF5 input")
    _, py, _ = venv
    src = tmp_path / "in.h5"
    with h5py.File(src, "w") as f:
        f["x"] = np.arange(3)
    r = run(venv, "mmpconv", "convert", str(src), str(tmp_path / "a.mmpkl"), cwd=str(tmp_path))
    assert r.returncode == 1 and "built without HDF5 support" in r.stderr and "--no-binary mmpbridge" in r.stderr, r
    code = ("import sys, mmpbridge\n"
            "try:\n"
            "    mmpbridge.convert(sys.argv[1], sys.argv[2])\n"
            "except OSError as e:\n"
            "    print(e)\n"
            "else:\n"
            "    sys.exit('converted')\n")
    r = run(venv, py, "-c", code, str(src), str(tmp_path / "b.mmpkl"), cwd=str(tmp_path))
    assert r.returncode == 0, r
    assert str(src) in r.stdout and "built without HDF5 support" in r.stdout and "libhdf5-dev" in r.stdout, r.stdout
    assert not (tmp_path / "a.mmpkl").exists() and not (tmp_path / "b.mmpkl").exists()


# A C program that loads libmmp.so with dlopen, as ctypes does, and lists a
# file's keys: built for aarch64 with the wheels' zig, run under qemu-user.
LOADER_C = r"""
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
int main(int argc, char **argv) {
	if (argc != 3) return 2;
	void *l = dlopen(argv[1], RTLD_NOW);
	if (!l) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
	char *(*version)(void) = (char *(*)(void))dlsym(l, "mmp_version");
	int64_t (*open)(const char *, int) = (int64_t (*)(const char *, int))dlsym(l, "mmp_open");
	char *(*keys)(int64_t) = (char *(*)(int64_t))dlsym(l, "mmp_keys_json");
	int (*close)(int64_t) = (int (*)(int64_t))dlsym(l, "mmp_close");
	if (!version || !open || !keys || !close) { fprintf(stderr, "dlsym: %s\n", dlerror()); return 1; }
	int64_t h = open(argv[2], 0);
	if (h == 0) { fprintf(stderr, "mmp_open failed\n"); return 1; }
	char *k = keys(h);
	if (!k) return 1;
	printf("%s %s\n", version(), k);
	return close(h) == 0 ? 0 : 1;
}
"""
AARCH64_ROOT = "/usr/aarch64-linux-gnu"  # Debian's libc6-arm64-cross


def test_aarch64_wheel_runs_under_qemu(wheels, tmp_path):
    """There is no aarch64 Python here: the aarch64 wheel's libmmp.so is
    loaded by a C program (dlopen, as ctypes does) and its mmpconv converts
    the sample, both under qemu-user with Debian's aarch64 glibc. Needs
    qemu-user-static and libc6-arm64-cross (Debian packages, which
    scripts/setup.sh installs): skips without them, fails under CI."""
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if qemu is None or not os.path.exists(os.path.join(AARCH64_ROOT, "lib", "ld-linux-aarch64.so.1")):
        (pytest.fail if ci() else pytest.skip)("needs qemu-user-static and libc6-arm64-cross (apt)")
    with zipfile.ZipFile(wheels["aarch64"]) as z:
        z.extractall(tmp_path)
    (tmp_path / "load.c").write_text(LOADER_C)
    subprocess.run([tools_bin("python"), "-m", "ziglang", "cc", "-target", "aarch64-linux-gnu.2.17", "-o",
                    str(tmp_path / "load"), str(tmp_path / "load.c"), "-ldl"], check=True,
                   env=dict(os.environ, ZIG_GLOBAL_CACHE_DIR=os.path.join(mmp_cache(), "zig")))
    r = subprocess.run([qemu, "-L", AARCH64_ROOT, str(tmp_path / "load"), str(tmp_path / "mmpbridge" / "libmmp.so"),
                        str(REPO / "examples" / "sample.mmpkl")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r
    version, keys = r.stdout.split(" ", 1)
    assert version[0].isdigit() and "cube" in keys, r.stdout
    cli = next(tmp_path.glob("mmpbridge-*.data/scripts/mmpconv"))
    os.chmod(cli, 0o755)
    out = tmp_path / "sample.mmpkl"
    r = subprocess.run([qemu, str(cli), "convert", str(REPO / "examples" / "sample.npz"), str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r
    with open(out, "rb") as f:
        got = pickle.load(f)
    with np.load(REPO / "examples" / "sample.npz") as want:
        assert sorted(got) == sorted(want.files) and all(np.array_equal(got[k], want[k]) for k in want.files)
