// Command mmpconv reads, inspects and converts mmappickle files.
//
//	mmpconv ls FILE
//	mmpconv inspect --json [--hash] FILE
//	mmpconv convert [--profile portable|mmappickle] [--align N] [--force] [--from F] [--to F] SRC DST
//	mmpconv get FILE KEY [-o OUT.npy]
//	mmpconv put FILE KEY (SRC.npy | --json VALUE)
//	mmpconv rm FILE KEY...
//	mmpconv vacuum FILE
//	mmpconv fsck FILE
//
// Formats: mmappickle (.mmpkl, .pkl), .npy, .npz, HDF5 (.h5, .hdf5).
// Exit status: 0 on success, 1 for a problem with the input, 2 for bad usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run())
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
}
