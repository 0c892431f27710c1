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
// Exit status: 0 on success, 1 for a problem with the input, 2 for bad
// usage, 130 (143) when interrupted by SIGINT (SIGTERM).
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
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if s, ok := <-sigs; ok {
			cancel(interrupted{s.(syscall.Signal)})
		}
	}()
	return Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
}
