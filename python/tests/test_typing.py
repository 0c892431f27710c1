"""The package's types and help, as a user sees them.

`mypy --strict` on data/typing_user_script.py (every documented call, with
the types a user writes) finds nothing, and on data/typing_misuse.py finds
an error on exactly the lines marked `# error` (so that an untyped package,
which mypy sees as Any, fails here). mypy finds mmpbridge where the tests
import it from: the source tree through MYPYPATH, or the installed package
(under tox), which mypy reads only when it carries py.typed.
"""
import inspect
import io
import os
import pydoc
import re
import site
import subprocess
import sys

import pytest

import mmpbridge
from helpers import require
from mmpbridge import _lib
from test_remote import served  # noqa: F401 - the fixture

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PKG = os.path.dirname(os.path.abspath(mmpbridge.__file__))


def _mypy(tmp_path_factory, *targets):
    require("mypy")
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    parent = os.path.dirname(PKG)
    installed = any(os.path.samefile(parent, p) for p in site.getsitepackages() + [site.getusersitepackages()]
                    if os.path.isdir(p))
    if not installed:
        env["MYPYPATH"] = parent
    cache = tmp_path_factory.getbasetemp() / "mypy-cache"
    cmd = [sys.executable, "-m", "mypy", "--strict", "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}",
           "--cache-dir", str(cache), "--no-error-summary", "--show-error-codes"]
    # The user's view: the package's signatures, not its bodies' errors.
    cmd.append("--follow-imports=silent")
    r = subprocess.run(cmd + list(targets), capture_output=True, text=True, env=env, timeout=600)
    return r, installed


def test_py_typed_shipped():
    assert os.path.isfile(os.path.join(PKG, "py.typed")), f"no py.typed in {PKG}"


def test_mypy_strict_user_script(tmp_path_factory):
    r, installed = _mypy(tmp_path_factory, os.path.join(DATA, "typing_user_script.py"))
    assert r.returncode == 0, f"mypy --strict (package {'installed' if installed else 'from MYPYPATH'}):\n{r.stdout}{r.stderr}"


def test_mypy_refuses_misuse(tmp_path_factory):
    script = os.path.join(DATA, "typing_misuse.py")
    with open(script) as f:
        want = {i for i, line in enumerate(f, 1) if line.rstrip().endswith("# error")}
    assert len(want) >= 15
    r, _ = _mypy(tmp_path_factory, script)
    got = {int(m.group(1)) for m in re.finditer(r"typing_misuse\.py:(\d+): error:", r.stdout)}
    assert got == want, f"errors wanted on lines {sorted(want)}, mypy gave:\n{r.stdout}{r.stderr}"


def test_user_script_runs(tmp_path, served):  # noqa: F811
    """The user script is real code: it runs, locally and over HTTP."""
    url, _, _ = served
    r = subprocess.run([sys.executable, os.path.join(DATA, "typing_user_script.py"), str(tmp_path), url],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_signature_is_the_real_one():
    sig = inspect.signature(mmpbridge.mmapdict)
    init = inspect.signature(mmpbridge.mmapdict.__init__)
    assert list(sig.parameters) == ["file", "readonly", "picklers", "profile", "align", "trusted"]
    assert list(sig.parameters.values()) == list(init.parameters.values())[1:]
    assert sig.parameters["file"].default is inspect.Parameter.empty
    assert sig.parameters["profile"].kind is inspect.Parameter.KEYWORD_ONLY
    text = pydoc.render_doc(mmpbridge.mmapdict, renderer=pydoc.plaintext)
    header = text.split("\n")[3]  # help()'s signature line, under "class mmapdict(...)"
    assert header.lstrip(" |").startswith("mmapdict(file:") and "readonly" in header, text[:800]
    assert "*args" not in text and "**kwargs" not in text
    doc = mmpbridge.mmapdict.__doc__
    assert "remotedict" in doc and "URL" in doc and "Raises" in doc


def test_exports():
    for name in ("mmapdict", "remotedict", "LazyArray", "EmptyNDArray", "convert", "verify", "salvage",
                 "Error", "FormatError", "UnsupportedError", "NotPlainError", "__version__"):
        assert name in mmpbridge.__all__, name
        assert hasattr(mmpbridge, name), name
    assert mmpbridge.FormatError is _lib.FormatError
    assert issubclass(mmpbridge.FormatError, (mmpbridge.Error)) and issubclass(mmpbridge.FormatError, ValueError)
    assert issubclass(mmpbridge.UnsupportedError, mmpbridge.Error) and issubclass(mmpbridge.UnsupportedError, TypeError)
    for name in mmpbridge.__all__:
        obj = getattr(mmpbridge, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_public_errors_are_exported_ones(tmp_path):
    bad = tmp_path / "bad.mmpkl"
    bad.write_bytes(b"\x80\x04 not an mmappickle file")
    with pytest.raises(mmpbridge.FormatError) as e:
        mmpbridge.mmapdict(str(bad), readonly=True)
    assert str(bad) in str(e.value) and e.value.code > 0
    with pytest.raises(io.UnsupportedOperation):
        mmpbridge.mmapdict("http://127.0.0.1:9/x.mmpkl", readonly=False)


def test_every_public_callable_annotated():
    """Every public function and method has annotations for all its
    parameters and its return (what mypy --strict needs of a user's view)."""
    missing = []
    objs = [getattr(mmpbridge, n) for n in mmpbridge.__all__]
    for obj in objs:
        funcs = [obj] if inspect.isfunction(obj) else []
        if inspect.isclass(obj):
            for n, f in vars(obj).items():
                if isinstance(f, property):
                    f = f.fget
                if inspect.isfunction(f) and (not n.startswith("_") or n in (
                        "__init__", "__new__", "__getitem__", "__setitem__", "__delitem__", "__len__", "__iter__",
                        "__contains__", "__enter__", "__exit__", "__array__")):
                    funcs.append(f)
        for f in funcs:
            sig = inspect.signature(f)
            for p in sig.parameters.values():
                if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty:
                    missing.append(f"{f.__qualname__}({p.name})")
            if sig.return_annotation is inspect.Signature.empty:
                missing.append(f"{f.__qualname__} -> ?")
    assert not missing, missing


def test_mypy_strict_package(tmp_path_factory, tmp_path):
    """The package's own code passes mypy --strict (a copy of its sources,
    so that the installed package is checked too; numpy 1.x ships numpy.ma
    untyped, so calls into it are let through)."""
    require("mypy")
    import shutil
    shutil.copytree(PKG, tmp_path / "mmpbridge", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    env = dict(os.environ, MYPYPATH=str(tmp_path))
    cache = tmp_path_factory.getbasetemp() / "mypy-cache"
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--untyped-calls-exclude=numpy.ma",
                        "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}", "--cache-dir", str(cache),
                        "-p", "mmpbridge"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
