// Package pyrepr writes Python's repr of str and bytes, for the bridge
// (str(dtype) of a structured dtype names its fields so) and for
// internal/render. It imports nothing of the module.
package pyrepr
