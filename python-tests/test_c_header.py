"""libmmp.h, written by go build -buildmode=c-shared next to libmmp.so,
declares the functions with the C signatures of the ABI: a C program that
assigns each one to a pointer of the documented type compiles without a
warning, links against libmmp.so and runs. Needs a C compiler (skipped
without one)."""
import os
import shutil
import subprocess

import pytest

from mmphelpers import CORPUS

PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include "libmmp.h"

int64_t (*p_open)(const char *, int) = mmp_open;
int (*p_close)(int64_t) = mmp_close;
char *(*p_keys)(int64_t) = mmp_keys_json;
char *(*p_entry)(int64_t, const char *) = mmp_entry_json;
void *(*p_data)(int64_t, const char *, int64_t *) = mmp_array_data;
void *(*p_masked)(int64_t, const char *, int, int64_t *) = mmp_masked_data;
int (*p_convert)(const char *, const char *, const char *) = mmp_convert;
char *(*p_err)(void) = mmp_last_error;
void (*p_free)(void *) = mmp_free;

int main(int argc, char **argv) {
	int64_t h = mmp_open(argv[1], 0);
	if (h <= 0) { char *e = mmp_last_error(); fprintf(stderr, "%s\n", e); mmp_free(e); return 1; }
	char *keys = mmp_keys_json(h);
	int64_t n = -1;
	const double *d = mmp_array_data(h, "float64", &n);
	printf("%s %lld %g %g\n", keys, (long long)n, d[0], d[4]);
	mmp_free(keys);
	if (mmp_close(h) != 0) return 2;
	if (mmp_close(h) != -1) return 3;
	char *e = mmp_last_error();
	printf("%s\n", e);
	mmp_free(e);
	return 0;
}
"""


def test_header_and_c_call(tmp_path, tools):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler here")
    header = os.path.splitext(tools["libmmp"])[0] + ".h"
    assert os.path.exists(header), header
    (tmp_path / "t.c").write_text(PROGRAM)
    shutil.copy(header, tmp_path / "libmmp.h")
    libdir = os.path.dirname(os.path.abspath(tools["libmmp"]))
    lib = os.path.basename(tools["libmmp"])
    subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-o", tmp_path / "t", tmp_path / "t.c",
                    "-L", libdir, f"-l:{lib}", f"-Wl,-rpath,{libdir}"], check=True, cwd=tmp_path)
    r = subprocess.run([tmp_path / "t", CORPUS / "portable" / "dtypes.mmpkl"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first.startswith('["bool",') and " 48 0 4" in first, first
    assert "invalid handle" in second
