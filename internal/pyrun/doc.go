// Package pyrun lets Go tests run Python, with numpy 1.x, numpy 2.x or the
// real mmappickle, against files the tests wrote. It is the one place the
// tests find Python.
//
// The environments are those of tox.ini, which scripts/setup.sh installs
// from PyPI under $MMP_PYENVS (default ~/.cache/mmpbridge/pyenvs):
//
//   - Numpy1: numpy 1.x with h5py, pytest, hypothesis.
//   - Numpy2: numpy >= 2.3 with h5py, pytest, hypothesis.
//   - Reference: numpy < 1.24 with mmappickle itself.
//
// When an environment is missing the test is skipped, except when CI=true:
// then it fails, so that CI never silently skips the Python checks.
//
// It is for tests only, and must not import the project's other packages.
package pyrun
