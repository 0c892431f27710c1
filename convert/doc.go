// Package convert moves arrays between mmappickle files and other formats,
// streaming, in constant memory. Outputs are written to a temporary file
// beside the destination and renamed into place only when complete, so an
// interrupted conversion never leaves a partial destination. Converters
// print nothing: progress goes through Options.Progress.
package convert
