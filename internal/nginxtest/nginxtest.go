package nginxtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Server is a running nginx.
type Server struct {
	URL       string // http://127.0.0.1:PORT
	accessLog string
}

// Start serves dir until the test ends.
func Start(t testing.TB, dir string) *Server {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/nginx"); err2 == nil {
			bin = "/usr/sbin/nginx"
		} else if os.Getenv("CI") == "true" {
			t.Fatal("nginx not found: run scripts/setup.sh")
		} else {
			t.Skip("nginx not found (scripts/setup.sh installs it)")
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{URL: "http://" + addr, accessLog: filepath.Join(tmp, "access.log")}
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
	log_format counts "$request_method $uri $status $body_bytes_sent \"$http_range\"";
	access_log %[2]s counts;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	types { application/octet-stream mmpkl; }
	server {
		listen %[3]s;
		root %[4]s;
		location / { }
	}
}
`, tmp, s.accessLog, addr, abs)
	cf := filepath.Join(tmp, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cf, "-p", tmp)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not start: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// Requests returns the requests logged so far (method, path, status, body
// bytes, Range header) and resets the log.
func (s *Server) Requests(t testing.TB) []Request {
	t.Helper()
	b, err := os.ReadFile(s.accessLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	os.Truncate(s.accessLog, 0)
	var out []Request
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r Request
		if line == "" {
			continue
		}
		if _, err := fmt.Sscanf(line, "%s %s %d %d", &r.Method, &r.Path, &r.Status, &r.Bytes); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// Request is one line of the access log.
type Request struct {
	Method, Path string
	Status       int
	Bytes        int64
}

// Moved sums the body bytes of requests.
func Moved(rs []Request) int64 {
	var n int64
	for _, r := range rs {
		n += r.Bytes
	}
	return n
}
