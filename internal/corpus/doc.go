// Package corpus loads the reference files written by mmappickle 1.0.1
// (compat/testdata/{mmappickle,portable}) and their manifest, for tests:
// the one place that knows where the corpus is and what its manifest says.
// It must not import the project's other packages.
package corpus
