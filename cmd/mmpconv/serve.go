package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"mmpbridge/bridge"
	"mmpbridge/convert"
	"mmpbridge/internal/render"
)

func serveCmd(e *env) *cobra.Command {
	var addr string
	var maxRequests int
	cmd := &cobra.Command{
		Use:   "serve DIR [--addr 127.0.0.1:8080]",
		Short: "Serve the mmappickle files under DIR over HTTP, read-only",
		Long: `Serve the .mmpkl files under DIR, read-only, as a static server does (Range,
ETag, Last-Modified), so that mmpconv and mmpbridge read them remotely; and:

  GET /FILE.mmpkl/          the inspect --json index of the file
  GET /FILE.mmpkl/KEY.npy   the array KEY as an .npy file (Range too), for
                            np.load(io.BytesIO(urlopen(url).read())) with only numpy

No path leaves DIR: "..", absolute paths and symbolic links out of DIR are
refused. Listens on loopback unless --addr says otherwise; one access-log line
per request on stderr; Ctrl-C stops it gracefully.`,
		Example: `  mmpconv serve /data
  mmpconv serve --addr 0.0.0.0:8080 /data
  mmpconv ls http://127.0.0.1:8080/scene.mmpkl`,
		Args: exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if maxRequests < 1 {
				return usagef("serve: --max-requests must be at least 1")
			}
			root, err := os.OpenRoot(args[0])
			if err != nil {
				return err
			}
			defer root.Close()
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			srv := &http.Server{
				Handler:           newServer(root, e.stderr, maxRequests),
				ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout:       30 * time.Second,
				IdleTimeout:       60 * time.Second,
				BaseContext:       func(net.Listener) context.Context { return e.ctx },
			}
			fmt.Fprintf(e.stderr, "mmpconv: serving %s at http://%s/\n", args[0], ln.Addr())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			select {
			case err := <-done:
				return err
			case <-e.ctx.Done():
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
				<-done
				return e.ctx.Err()
			}
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on")
	cmd.Flags().IntVar(&maxRequests, "max-requests", 64, "requests served at once (more get 503)")
	return cmd
}

// server answers the requests of serve.
type server struct {
	root *os.Root
	log  io.Writer
	sem  chan struct{}
}

func newServer(root *os.Root, log io.Writer, max int) http.Handler {
	return &server{root: root, log: log, sem: make(chan struct{}, max)}
}

type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
	w.ResponseWriter.WriteHeader(s)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		fmt.Fprintf(s.log, "%s %s %q %d %d %s\n", r.RemoteAddr, r.Method, r.URL.RequestURI(), sw.status, sw.n, time.Since(start).Round(time.Microsecond))
	}()
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		http.Error(sw, "too many requests at once", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		sw.Header().Set("Allow", "GET, HEAD")
		http.Error(sw, "read-only", http.StatusMethodNotAllowed)
		return
	}
	file, rest, ok := splitServed(r.URL.Path)
	if !ok {
		http.Error(sw, "bad path", http.StatusBadRequest)
		return
	}
	f, st, err := s.open(file)
	if err != nil {
		s.fail(sw, err)
		return
	}
	defer f.Close()
	etag := fmt.Sprintf(`"%x-%x"`, st.Size(), st.ModTime().UnixNano())
	switch {
	case rest == "":
		sw.Header().Set("ETag", etag)
		http.ServeContent(sw, r, path.Base(file), st.ModTime(), f)
	case rest == "/":
		s.index(sw, r, f, st, etag)
	case strings.HasSuffix(rest, ".npy"):
		s.npy(sw, r, f, st, etag, strings.TrimSuffix(rest[1:], ".npy"))
	default:
		http.NotFound(sw, r)
	}
}

// splitServed splits "/a/b.mmpkl/KEY.npy" into the file "a/b.mmpkl" and
// the rest "/KEY.npy"; it refuses any ".." segment, backslashes and NULs.
func splitServed(p string) (file, rest string, ok bool) {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return "", "", false
	}
	i := strings.Index(p, ".mmpkl")
	for i >= 0 && i+len(".mmpkl") < len(p) && p[i+len(".mmpkl")] != '/' {
		j := strings.Index(p[i+1:], ".mmpkl")
		if j < 0 {
			i = -1
			break
		}
		i += 1 + j
	}
	if i < 0 {
		return "", "", false
	}
	file, rest = p[1:i+len(".mmpkl")], p[i+len(".mmpkl"):]
	for _, seg := range strings.Split(file, "/") {
		if seg == ".." || seg == "." || seg == "" {
			return "", "", false
		}
	}
	return file, rest, true
}

// errNotRegular: the path names a FIFO, a device, a socket or a directory.
var errNotRegular = errors.New("not a regular file")

// open opens a regular file in DIR, and nothing else: a FIFO, a device, a
// socket or a directory is not opened at all (a FIFO's open would block
// until a writer came, holding a request slot). The path is checked first
// (following links inside DIR), then opened without blocking, and the
// descriptor opened is what is checked again: it may have been replaced
// in between.
func (s *server) open(file string) (*os.File, os.FileInfo, error) {
	st, err := s.root.Stat(file)
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, nil, errNotRegular
	}
	f, err := s.root.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err = f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, errNotRegular
	}
	return f, st, nil
}

// fail answers a file that cannot be opened in DIR: missing or not a
// regular file (404), or outside DIR through a symbolic link, or
// unreadable (403).
func (s *server) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotRegular) {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	http.Error(w, "forbidden", http.StatusForbidden)
}

func (s *server) index(w http.ResponseWriter, r *http.Request, f *os.File, st os.FileInfo, etag string) {
	rd, err := bridge.NewReader(ctxReaderAt{r.Context(), f}, st.Size())
	if err != nil {
		if r.Context().Err() != nil {
			return // nobody to answer
		}
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	// The request's context: a client that goes away stops the work.
	var out bytes.Buffer
	if err := inspectJSON(render.NewBudget(r.Context(), 0), &out, rd, false); err != nil {
		if r.Context().Err() != nil {
			return // nobody to answer
		}
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", etag+"-index")
	http.ServeContent(w, r, "index.json", st.ModTime(), bytes.NewReader(out.Bytes()))
}

func (s *server) npy(w http.ResponseWriter, r *http.Request, f *os.File, st os.FileInfo, etag, key string) {
	rd, err := bridge.NewReader(ctxReaderAt{r.Context(), f}, st.Size())
	if err != nil {
		if r.Context().Err() != nil {
			return // nobody to answer
		}
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	a, err := rd.Array(key)
	if err != nil {
		if errors.Is(err, bridge.ErrKeyNotFound) {
			http.NotFound(w, r)
			return
		}
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	hdr := convert.NpyHeader(a)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", fmt.Sprintf("%s-%x", strings.TrimSuffix(etag, `"`), a.Offset)+`"`)
	http.ServeContent(w, r, key+".npy", st.ModTime(), &multiSeeker{parts: []io.ReaderAt{bytes.NewReader(hdr), io.NewSectionReader(f, a.Offset, a.NBytes)}, sizes: []int64{int64(len(hdr)), a.NBytes}})
}

// ctxReaderAt reads for a request: once its client has gone, reading the
// file fails, and the work on it (the index, a value) stops.
type ctxReaderAt struct {
	ctx context.Context
	r   io.ReaderAt
}

func (c ctxReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.ReadAt(p, off)
}

// multiSeeker is an io.ReadSeeker over parts laid end to end (an .npy
// header, then the array's bytes in the file), for http.ServeContent.
type multiSeeker struct {
	parts []io.ReaderAt
	sizes []int64
	pos   int64
}

func (m *multiSeeker) size() int64 {
	var n int64
	for _, s := range m.sizes {
		n += s
	}
	return n
}

func (m *multiSeeker) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += m.pos
	case io.SeekEnd:
		off += m.size()
	}
	if off < 0 {
		return 0, errors.New("negative position")
	}
	m.pos = off
	return off, nil
}

func (m *multiSeeker) Read(b []byte) (int, error) {
	base := int64(0)
	for i, p := range m.parts {
		if m.pos < base+m.sizes[i] {
			n, err := p.ReadAt(b[:min(int64(len(b)), base+m.sizes[i]-m.pos)], m.pos-base)
			m.pos += int64(n)
			if err == io.EOF && n > 0 {
				err = nil
			}
			return n, err
		}
		base += m.sizes[i]
	}
	return 0, io.EOF
}
