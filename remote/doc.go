// Package remote reads files on HTTP(S) servers that honour Range
// requests as an io.ReaderAt (File), with a block cache, readahead for
// sequential walks, concurrent fetches of large reads, retries and a pinned
// identity. It knows nothing of mmappickle: bridge.OpenReader and
// bridge.NewReader read through it, and it must not import the project's
// other packages.
package remote
