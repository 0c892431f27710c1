package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressReporter renders converter progress as a bar on stderr when
// stderr is a terminal (and --quiet is not set); otherwise it does nothing.
type progressReporter struct {
	mu  sync.Mutex
	bar *progressbar.ProgressBar
	w   io.Writer
	max int64
}

func newProgress(stderr io.Writer, quiet bool, what string) *progressReporter {
	f, ok := stderr.(*os.File)
	if quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &progressReporter{w: stderr, bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth(),
		progressbar.OptionClearOnFinish(),
	)}
}

// update is the converters' Progress callback; nil-safe.
func (p *progressReporter) update(done, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if total != p.max {
		p.max = total
		p.bar.ChangeMax64(total)
	}
	p.bar.Set64(done)
}

func (p *progressReporter) callback() func(done, total int64) {
	if p == nil {
		return nil
	}
	return p.update
}

func (p *progressReporter) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bar.Finish()
	fmt.Fprint(p.w, "")
}

// clear takes the bar off the terminal before a line is printed to stdout
// (the bar redraws itself at its next update).
func (p *progressReporter) clear() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bar.Clear()
}
