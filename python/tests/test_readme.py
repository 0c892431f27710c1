"""Every ```python block of the READMEs (the repository's README.md and
python/README.md) runs as written: the text is read from the README files
themselves, never copied here.

A README's blocks run in order, in one child process (a crash cannot take
the test runner down), in one namespace (a later block may use what an
earlier one made), in a fresh temporary directory, compiled with the
README's own line numbers so a failure names README.md:LINE.

Two kinds of block are recognised by their text:
- a script, whose docstring starts `usage: python3 NAME ARG...`, runs as a
  script with its arguments: LIBMMP is the libmmp the package loads, FILE
  the first *.mmpkl file an earlier block made;
- a block whose first line is `# readme-test: skip: WHY` is not run (for
  a block that needs a server or the network; WHY is required).
"""
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from helpers import require
from mmpbridge import _lib

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)  # python/
REPO = os.path.dirname(PYDIR)
SKIP = re.compile(r"#\s*readme-test:\s*skip:\s*(\S.*)")
USAGE = re.compile(r'^"""usage: python3? (\S+)((?: [A-Z]+)*)\b')

_RUNNER = textwrap.dedent(r'''
    import glob, json, os, subprocess, sys
    readme, blocks, libmmp = json.load(open(sys.argv[1]))
    ns = {"__name__": "__main__"}
    for line, text, script in blocks:
        if script is None:
            code = compile("\n" * (line - 1) + text, readme, "exec")
            exec(code, ns)
            print(f"ok {readme}:{line}", flush=True)
            continue
        name, args = script
        made = sorted(glob.glob("*.mmpkl"), key=os.path.getmtime)
        values = {"LIBMMP": libmmp, "FILE": made[0] if made else None}
        argv = [values[a] for a in args]
        assert None not in argv, f"{readme}:{line}: no value for {args}"
        with open(name, "w") as f:
            f.write(text)
        r = subprocess.run([sys.executable, name] + argv, capture_output=True, text=True)
        sys.stdout.write(r.stdout)
        if r.returncode != 0:
            sys.exit(f"{readme}:{line}: python3 {name} {' '.join(argv)}: exit {r.returncode}\n{r.stderr}")
        print(f"ok {readme}:{line} (script {name})", flush=True)
''')


def python_blocks(path):
    """[(first line number of the code, code text, script or None)] of the
    ```python blocks of the Markdown file at path, and the skipped ones'
    reasons."""
    blocks, skipped = [], []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            assert j < len(lines), f"{path}:{i + 1}: a ```python block that never ends"
            text = "\n".join(lines[start:j]) + "\n"
            m = SKIP.match(lines[start]) if start < j else None
            if m:
                skipped.append((start + 1, m.group(1)))
            else:
                u = USAGE.match(text)
                script = (u.group(1), u.group(2).split()) if u else None
                blocks.append((start + 1, text, script))
            i = j
        i += 1
    return blocks, skipped


IMPORT = re.compile(r"^(?:import|from)\s+([A-Za-z_]\w*)", re.M)


def imported_modules(blocks):
    """The top-level modules the blocks import."""
    return {m for _, text, _ in blocks for m in IMPORT.findall(text)}


def run_readme(path, tmp_path):
    blocks, _ = python_blocks(path)
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps([path, blocks, _lib._path]))
    work = tmp_path / "work"
    work.mkdir()
    return subprocess.run([sys.executable, "-c", _RUNNER, str(spec)], cwd=work, capture_output=True, text=True,
                          timeout=600), blocks


READMES = [os.path.join(REPO, "README.md"), os.path.join(PYDIR, "README.md")]


@pytest.mark.parametrize("readme", READMES, ids=["README.md", "python/README.md"])
def test_readme_examples_run(readme, tmp_path):
    if not os.path.exists(os.path.join(REPO, "go.mod")):
        pytest.skip("not in the repository: its README.md is not here")
    # What the examples import must be here: where the environment lists
    # it in MMP_REQUIRE (numpy1, numpy2: dask, xarray) a missing one fails,
    # elsewhere (the reference environment, which has neither) the README
    # is skipped, saying which.
    for name in sorted(imported_modules(python_blocks(readme)[0])):
        require(name)
    r, blocks = run_readme(readme, tmp_path)
    assert blocks, f"no ```python block found in {readme}"
    assert r.returncode == 0, f"{readme}:\n{r.stdout}\n{r.stderr}"
    assert r.stdout.count("ok ") == len(blocks), r.stdout


def test_readme_skips_say_why():
    """Skipped blocks are few and each says why."""
    if not os.path.exists(os.path.join(REPO, "go.mod")):
        pytest.skip("not in the repository: its README.md is not here")
    for readme in READMES:
        blocks, skipped = python_blocks(readme)
        assert len(skipped) <= 2, skipped
        assert all(len(why) > 10 for _, why in skipped), skipped


def test_root_readme_blocks_found():
    """The extraction sees the README's Python: the mmapdict example and the
    ctypes script (run as a script)."""
    if not os.path.exists(os.path.join(REPO, "go.mod")):
        pytest.skip("not in the repository: its README.md is not here")
    blocks, _ = python_blocks(READMES[0])
    texts = [t for _, t, _ in blocks]
    assert any("mmapdict(" in t for t in texts)
    assert any(s == ("example_ctypes.py", ["LIBMMP", "FILE"]) for _, _, s in blocks)


@pytest.mark.parametrize("body, want", [
    ("```python\nm = cube + 1\n```\n", "NameError"),
    ("```python\nfrom mmpbridge import mmapdict\nm = mmapdict('x.mmpkl')\nm['a'] = 1\n```\n\n"
     "```python\nprint(m['mask_me'])\n```\n", "KeyError"),
    ('```python\n"""usage: python3 ex.py FILE"""\nimport sys\nopen(sys.argv[1], "rb").read(1)\n'
     'raise SystemExit(3)\n```\n', "no value for"),
])
def test_runner_fails_on_bad_examples(tmp_path, body, want):
    """The runner reports what the README's old examples did."""
    md = tmp_path / "BAD.md"
    md.write_text("# bad\n\n" + body)
    r, _ = run_readme(str(md), tmp_path)
    assert r.returncode != 0 and want in r.stderr, r.stdout + r.stderr
    assert str(md) in r.stderr  # names the README and line


def test_ctypes_example_file_is_the_readme_block():
    """python-tests/example_ctypes.py (run by the interop suite) holds the
    README's text, character for character."""
    if not os.path.exists(os.path.join(REPO, "go.mod")):
        pytest.skip("not in the repository: its README.md is not here")
    blocks, _ = python_blocks(READMES[0])
    text = next(t for _, t, s in blocks if s and s[0] == "example_ctypes.py")
    with open(os.path.join(REPO, "python-tests", "example_ctypes.py"), encoding="utf-8") as f:
        assert f.read() == text
