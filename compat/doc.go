// Package compat holds the compatibility contract of the project: reference
// files written by mmappickle 1.0.1 itself (testdata/, never edited) and the
// tests that hold the bridge to them byte for byte.
package compat
