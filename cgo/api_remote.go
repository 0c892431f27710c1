package main

// Remote files: read-only handles on a file served over HTTP(S), sharing
// the Go block cache between every read through them.

import (
	"context"
	"fmt"
	"io"

	"mmpbridge/bridge"
	"mmpbridge/internal/render"
	"mmpbridge/remote"
)

type remoteHandle struct {
	url string
	hf  *remote.File
	r   *bridge.Reader
}

var remotes = newTable[*remoteHandle]("remote handle")

func openRemote(url string) (int64, error) {
	if !remote.IsURL(url) {
		return 0, fmt.Errorf("%q: not an http:// or https:// URL", url)
	}
	r, c, err := bridge.OpenReader(context.Background(), url, interruptible)
	if err != nil {
		return 0, err
	}
	return remotes.add(&remoteHandle{url: url, hf: c.(*remote.File), r: r}), nil
}

func closeRemote(h int64) error {
	rm, err := remotes.remove(h)
	if err != nil {
		return err
	}
	return rm.hf.Close()
}

func remoteKeysJSON(h int64) ([]byte, error) {
	rm, err := remotes.get(h)
	if err != nil {
		return nil, err
	}
	keys := rm.r.Keys()
	if keys == nil {
		keys = []string{}
	}
	return render.Marshal(keys)
}

func remoteEntryInfo(h int64, key string) ([]byte, error) {
	rm, err := remotes.get(h)
	if err != nil {
		return nil, err
	}
	return entryInfoOf(rm.r, rm.url, key)
}

func remoteValuePickle(h int64, key string, trusted bool) ([]byte, error) {
	rm, err := remotes.get(h)
	if err != nil {
		return nil, err
	}
	return valuePickleOf(rm.r, key, trusted)
}

// remoteRead fills buf with the file's bytes at off (an array's, as
// entry_info locates them): large reads go out in concurrent pieces.
func remoteRead(h int64, off int64, buf []byte) error {
	rm, err := remotes.get(h)
	if err != nil {
		return err
	}
	if off < 0 || int64(len(buf)) > rm.hf.Size()-off {
		return fmt.Errorf("%s: %d bytes at offset %d are past the end of the file (%d bytes)", rm.url, len(buf), off, rm.hf.Size())
	}
	n, err := rm.hf.ReadAt(buf, off)
	if n == len(buf) && (err == nil || err == io.EOF) {
		return nil
	}
	return err
}

// remoteStats is {"requests": N, "bytes": M} so far.
func remoteStats(h int64) ([]byte, error) {
	rm, err := remotes.get(h)
	if err != nil {
		return nil, err
	}
	n, b := rm.hf.Stats()
	return render.Marshal(map[string]int64{"requests": n, "bytes": b})
}
