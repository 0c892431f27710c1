package remote

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File is a file on an HTTP(S) server that honours Range requests
// (nginx, Apache, object stores, presigned URLs), read as an io.ReaderAt:
// bridge.NewReader(f, f.Size()) and bridge.Verify read it as they read a
// local file, and the same limits apply.
//
// Reads go through a cache of fixed-size blocks; a sequential walk (the
// entries of a file, one after another) fetches ever more blocks ahead in
// one request, and a large read (an array) is fetched in pieces by a few
// concurrent requests, bypassing the cache. The file's identity is pinned
// when it is opened (its ETag, else Last-Modified and size) and every later
// request is conditional on it: if the file changes on the server, reads
// fail with ErrRemoteChanged instead of mixing two versions. Connection
// errors, truncated bodies and 5xx answers are retried with backoff.
//
// An File is safe for concurrent use.
type File struct {
	url     string
	ctx     context.Context
	cfg     config
	client  *http.Client
	size    int64
	etag    string // strong ETag, or ""
	lastMod string

	mu    sync.Mutex
	lru   *list.List              // of *httpBlock, most recent first
	index map[int64]*list.Element // block number -> element
	next  int64                   // the block a sequential walk reads next
	ahead int64                   // blocks fetched ahead on the next miss

	requests atomic.Int64
	moved    atomic.Int64
}

type httpBlock struct {
	n    int64
	data []byte
}

// ErrRemoteChanged: the remote file changed (or was replaced) since it was
// opened.
var ErrRemoteChanged = errors.New("remote file changed while reading")

// ErrInvalidOption: an option's value is out of its range (bridge's
// ErrInvalidOption is this error too).
var ErrInvalidOption = errors.New("invalid option")

// ErrNoRange: the server does not honour Range requests (it answered a
// ranged request with the whole file), or answered one inconsistently.
var ErrNoRange = errors.New("the server does not honour Range requests")

// Option configures Open; each is checked where it is made.
type Option func(*config) error

type config struct {
	block    int64
	cache    int64
	maxAhead int64
	piece    int64
	parallel int
	retries  int
	backoff  time.Duration
	timeout  time.Duration
	client   *http.Client
	headers  http.Header
}

func defaultConfig() config {
	return config{
		block:    64 << 10,
		cache:    32 << 20,
		maxAhead: 4 << 20,
		piece:    8 << 20,
		parallel: 4,
		retries:  4,
		backoff:  100 * time.Millisecond,
		timeout:  30 * time.Second,
	}
}

// WithBlockSize sets the cache's block length: a power of two from 4 KiB
// to 16 MiB (default 64 KiB).
func WithBlockSize(n int) Option {
	return func(c *config) error {
		if n < 4<<10 || n > 16<<20 || n&(n-1) != 0 {
			return fmt.Errorf("%w: block size %d (want a power of two from 4 KiB to 16 MiB)", ErrInvalidOption, n)
		}
		c.block = int64(n)
		return nil
	}
}

// WithCacheSize bounds the bytes the block cache holds (default 32 MiB;
// at least one block).
func WithCacheSize(n int64) Option {
	return func(c *config) error {
		if n < 0 || n > 1<<34 {
			return fmt.Errorf("%w: cache size %d", ErrInvalidOption, n)
		}
		c.cache = n
		return nil
	}
}

// WithRetries sets how many times a failed request is retried (default 4;
// 0 to 10), with a backoff starting at d and doubling.
func WithRetries(n int, d time.Duration) Option {
	return func(c *config) error {
		if n < 0 || n > 10 || d < 0 || d > time.Minute {
			return fmt.Errorf("%w: %d retries, backoff %v", ErrInvalidOption, n, d)
		}
		c.retries, c.backoff = n, d
		return nil
	}
}

// WithTimeout bounds each request, from sending it to the end of its body
// (default 30 s).
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 || d > time.Hour {
			return fmt.Errorf("%w: timeout %v", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// WithHTTPClient sends the requests with client (default: a client of
// its own with connection and header timeouts).
func WithHTTPClient(client *http.Client) Option {
	return func(c *config) error {
		if client == nil {
			return fmt.Errorf("%w: nil HTTP client", ErrInvalidOption)
		}
		c.client = client
		return nil
	}
}

// WithHeader adds a header to every request (an Authorization, say).
func WithHeader(key, value string) Option {
	return func(c *config) error {
		if c.headers == nil {
			c.headers = http.Header{}
		}
		c.headers.Add(key, value)
		return nil
	}
}

// Open opens the file at url. ctx bounds every later read too (cancel
// it to abandon them). The first request fetches the first block and pins
// the file's identity and size.
func Open(ctx context.Context, url string, opts ...Option) (*File, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	client := cfg.client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ResponseHeaderTimeout: cfg.timeout,
			TLSHandshakeTimeout:   10 * time.Second,
			MaxIdleConnsPerHost:   cfg.parallel + 1,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		}}
	}
	f := &File{url: url, ctx: ctx, cfg: cfg, client: client, size: -1, lru: list.New(), index: map[int64]*list.Element{}}
	b, err := f.fetch(0, cfg.block)
	if err != nil {
		return nil, err
	}
	if len(b) > 0 {
		f.put(0, b)
	}
	f.next, f.ahead = 1, 1
	return f, nil
}

// Size is the file's size, as the server gave it when the file was opened.
func (f *File) Size() int64 { return f.size }

// Stats tells how many requests were sent and how many body bytes they
// moved.
func (f *File) Stats() (requests, bytes int64) { return f.requests.Load(), f.moved.Load() }

// Close drops the cache and the idle connections of its own client.
func (f *File) Close() error {
	f.mu.Lock()
	f.lru.Init()
	f.index = map[int64]*list.Element{}
	f.mu.Unlock()
	if f.cfg.client == nil {
		f.client.CloseIdleConnections()
	}
	return nil
}

// ReadAt reads len(p) bytes at off; at the end of the file it returns
// fewer and io.EOF.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: read at negative offset %d", f.url, off)
	}
	if off >= f.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := p
	if rest := f.size - off; int64(len(p)) > rest {
		want = p[:rest]
	}
	var err error
	if int64(len(want)) >= 2*f.cfg.block {
		err = f.readLarge(want, off)
	} else {
		err = f.readCached(want, off)
	}
	if err != nil {
		return 0, err
	}
	if len(want) < len(p) {
		return len(want), io.EOF
	}
	return len(p), nil
}

// readCached serves a small read from the block cache, fetching the
// missing blocks (and, on a sequential walk, more ahead) in one request.
func (f *File) readCached(p []byte, off int64) error {
	bs := f.cfg.block
	first, last := off/bs, (off+int64(len(p))-1)/bs
	// A read that starts where the previous one ended (or in the next
	// block) continues a walk: its misses fetch ever more ahead.
	f.mu.Lock()
	seq := first == f.next || first+1 == f.next
	f.next = last + 1
	f.mu.Unlock()
	for n := first; n <= last; {
		f.mu.Lock()
		b := f.get(n)
		var run, from int64
		if b == nil {
			// Fetch from n to the next cached block, plus readahead when
			// the walk is sequential.
			run = 1
			for n+run <= last && f.index[n+run] == nil {
				run++
			}
			if seq {
				run = max(run, f.ahead)
				f.ahead = min(2*f.ahead, max(1, f.cfg.maxAhead/bs))
			} else {
				f.ahead = 1
			}
			nblocks := (f.size + bs - 1) / bs
			run = min(run, nblocks-n)
			from = n
		}
		f.mu.Unlock()
		if b == nil {
			data, err := f.fetch(from*bs, run*bs)
			if err != nil {
				return err
			}
			f.mu.Lock()
			for i := int64(0); i < run; i++ {
				lo := i * bs
				if lo >= int64(len(data)) {
					break
				}
				f.put(from+i, data[lo:min(lo+bs, int64(len(data)))])
			}
			b = f.get(n)
			f.mu.Unlock()
			if b == nil { // a cache too small to keep it: use the fetch
				b = data[:min(bs, int64(len(data)))]
			}
		}
		lo := max(off, n*bs)
		hi := min(off+int64(len(p)), n*bs+int64(len(b)))
		if hi <= lo {
			return fmt.Errorf("%s: block %d is short: %w", f.url, n, ErrRemoteChanged)
		}
		copy(p[lo-off:hi-off], b[lo-n*bs:hi-n*bs])
		n++
	}
	return nil
}

func (f *File) get(n int64) []byte {
	if e := f.index[n]; e != nil {
		f.lru.MoveToFront(e)
		return e.Value.(*httpBlock).data
	}
	return nil
}

func (f *File) put(n int64, data []byte) {
	if f.index[n] != nil || int64(len(data)) > f.cfg.cache {
		return
	}
	f.index[n] = f.lru.PushFront(&httpBlock{n: n, data: data})
	for int64(f.lru.Len())*f.cfg.block > f.cfg.cache {
		e := f.lru.Back()
		delete(f.index, e.Value.(*httpBlock).n)
		f.lru.Remove(e)
	}
}

// readLarge fetches p in pieces, a few requests at a time, past the cache.
func (f *File) readLarge(p []byte, off int64) error {
	piece := f.cfg.piece
	sem := make(chan struct{}, f.cfg.parallel)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for lo := int64(0); lo < int64(len(p)); lo += piece {
		hi := min(lo+piece, int64(len(p)))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f.fetchInto(p[lo:hi], off+lo); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	return first
}

func (f *File) fetch(off, n int64) ([]byte, error) {
	if f.size >= 0 {
		n = min(n, f.size-off)
	}
	buf := make([]byte, n)
	got, err := f.fetchN(buf, off)
	return buf[:got], err
}

func (f *File) fetchInto(p []byte, off int64) error {
	n, err := f.fetchN(p, off)
	if err == nil && n != len(p) {
		err = fmt.Errorf("%s: %d of %d bytes at offset %d: %w", f.url, n, len(p), off, ErrRemoteChanged)
	}
	return err
}

// fetchN fills p from off with one ranged request (retried), returning the
// bytes read: len(p) but at the end of the file.
func (f *File) fetchN(p []byte, off int64) (int, error) {
	var err error
	for attempt := 0; ; attempt++ {
		var n int
		var retry bool
		n, retry, err = f.request(p, off)
		if err == nil || !retry || attempt >= f.cfg.retries {
			return n, err
		}
		select {
		case <-time.After(f.cfg.backoff << attempt):
		case <-f.ctx.Done():
			return 0, f.ctx.Err()
		}
	}
}

// request sends one ranged GET; retry tells whether a failure is worth
// another attempt (a dropped connection, a truncated body, a 5xx).
func (f *File) request(p []byte, off int64) (n int, retry bool, err error) {
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return 0, false, err
	}
	for k, vs := range f.cfg.headers {
		req.Header[k] = vs
	}
	end := off + int64(len(p)) - 1
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
	// Identity is compared on every answer too; asking the server to
	// refuse a changed file saves sending it.
	if f.etag != "" {
		req.Header.Set("If-Match", f.etag)
	} else if f.lastMod != "" {
		req.Header.Set("If-Unmodified-Since", f.lastMod)
	}
	// The body is counted as it is: a transparently decompressed body
	// would not be the file's bytes.
	req.Header.Set("Accept-Encoding", "identity")
	f.requests.Add(1)
	resp, err := f.client.Do(req)
	if err != nil {
		if f.ctx.Err() != nil {
			return 0, false, f.ctx.Err()
		}
		return 0, true, fmt.Errorf("%s: %w", f.url, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent:
	case resp.StatusCode == http.StatusOK:
		return 0, false, fmt.Errorf("%s: answered %s with the whole file to a request for bytes %d-%d: %w", f.url, resp.Status, off, end, ErrNoRange)
	case resp.StatusCode == http.StatusPreconditionFailed:
		return 0, false, fmt.Errorf("%s: %w", f.url, ErrRemoteChanged)
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && f.size < 0 && off == 0:
		// An empty file has no byte 0.
		if total, ok := parseUnsatisfied(resp.Header.Get("Content-Range")); ok && total == 0 {
			f.size = 0
			f.pin(resp)
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("%s: %s", f.url, resp.Status)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return 0, true, fmt.Errorf("%s: %s", f.url, resp.Status)
	default:
		return 0, false, fmt.Errorf("%s: %s", f.url, resp.Status)
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return 0, false, fmt.Errorf("%s: the server sent the range with Content-Encoding %q: %w", f.url, ce, ErrNoRange)
	}
	start, last, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
	if !ok || start != off || last < start || last > end || total < 0 || last >= total {
		return 0, false, fmt.Errorf("%s: asked for bytes %d-%d, got Content-Range %q: %w", f.url, off, end, resp.Header.Get("Content-Range"), ErrNoRange)
	}
	if f.size < 0 {
		f.size = total
		f.pin(resp)
	} else if total != f.size || !f.same(resp) {
		return 0, false, fmt.Errorf("%s: %w", f.url, ErrRemoteChanged)
	}
	if last != end && last != total-1 {
		return 0, false, fmt.Errorf("%s: asked for bytes %d-%d, got %d-%d: %w", f.url, off, end, start, last, ErrNoRange)
	}
	want := int(last - start + 1)
	got, err := io.ReadFull(resp.Body, p[:want])
	f.moved.Add(int64(got))
	if err != nil {
		if f.ctx.Err() != nil {
			return 0, false, f.ctx.Err()
		}
		return 0, true, fmt.Errorf("%s: body ended after %d of %d bytes: %w", f.url, got, want, err)
	}
	return got, false, nil
}

// pin records the file's identity from its first answer.
func (f *File) pin(resp *http.Response) {
	if et := resp.Header.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		f.etag = et
	}
	f.lastMod = resp.Header.Get("Last-Modified")
}

// same tells whether an answer is of the pinned file.
func (f *File) same(resp *http.Response) bool {
	if et := resp.Header.Get("ETag"); f.etag != "" && et != "" && et != f.etag {
		return false
	}
	if lm := resp.Header.Get("Last-Modified"); f.lastMod != "" && lm != "" && lm != f.lastMod {
		return false
	}
	return true
}

// parseContentRange parses "bytes START-END/TOTAL".
func parseContentRange(s string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	end, err2 = strconv.ParseInt(b, 10, 64)
	total, err3 = strconv.ParseInt(tot, 10, 64)
	return start, end, total, err1 == nil && err2 == nil && err3 == nil && start >= 0
}

// parseUnsatisfied parses "bytes */TOTAL".
func parseUnsatisfied(s string) (int64, bool) {
	tot, found := strings.CutPrefix(s, "bytes */")
	if !found {
		return 0, false
	}
	n, err := strconv.ParseInt(tot, 10, 64)
	return n, err == nil && n >= 0
}

// IsURL tells whether name is an http:// or https:// URL.
func IsURL(name string) bool {
	return strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://")
}

// Prefetch fetches into the cache, in as few requests as it can, the
// blocks of the given byte ranges (offset, length) that it lacks: runs of
// consecutive blocks within half the cache, a few requests at a time. A
// reader that knows what it will read (an index) saves a round trip per
// block.
func (f *File) Prefetch(spans [][2]int64) error {
	bs := f.cfg.block
	budget := f.cfg.cache / 2
	var runs [][2]int64
	f.mu.Lock()
	for _, s := range spans {
		if s[0] < 0 || s[1] < 0 || s[0] > f.size {
			continue
		}
		for lo, hi := s[0]/bs*bs, min((s[0]+s[1]+bs-1)/bs*bs, f.size); lo < hi && budget > 0; lo += bs {
			if f.index[lo/bs] != nil {
				continue
			}
			if k := len(runs); k > 0 && runs[k-1][1] == lo {
				runs[k-1][1] = lo + bs
			} else {
				runs = append(runs, [2]int64{lo, lo + bs})
			}
			budget -= bs
		}
	}
	f.mu.Unlock()
	sem := make(chan struct{}, f.cfg.parallel)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, run := range runs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			data, err := f.fetch(run[0], run[1]-run[0])
			if err != nil {
				once.Do(func() { first = err })
				return
			}
			f.mu.Lock()
			for o := int64(0); o < int64(len(data)); o += bs {
				f.put((run[0]+o)/bs, data[o:min(o+bs, int64(len(data)))])
			}
			f.mu.Unlock()
		}()
	}
	wg.Wait()
	return first
}
