// Package version holds the project's version: mmpconv --version, libmmp's
// mmp_version and the Python package mmpbridge (python/setup.py reads it
// from this file) all report it.
//
// It must not import anything.
package version
