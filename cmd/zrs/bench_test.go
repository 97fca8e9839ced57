package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/zrs-go/zrs/node"
	"github.com/zrs-go/zrs/storage"
)

// benchRow is one operation row of the bench table.
type benchRow struct {
	ops, conflicts, errors int
}

// parseBenchRow finds the row of op in the bench output.
func parseBenchRow(t *testing.T, out, op string) (benchRow, bool) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\s*` + op + `\s+(\d+)\s+\d+\s+\S+\s+\S+\s+\S+\s+(\d+)\s+(\d+)\s*$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		return benchRow{}, false
	}
	n := func(s string) int {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return benchRow{ops: n(m[1]), conflicts: n(m[2]), errors: n(m[3])}, true
}

// TestBenchAgainstServer runs `zrs bench` briefly against a server started
// by the test and checks its report against what the storage holds.
func TestBenchAgainstServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	store, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := node.NewZEOService(node.ZEOServiceConfig{Storage: store, Protocol: node.ProtocolMsgpack})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, ln) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			store.Close()
		}
	}
	defer stop()

	status, out, errOut := runZrs(t, "bench", "--addr", ln.Addr().String(), "--connections", "3", "--inflight", "2",
		"--duration", "300ms", "--mix", "50:50", "--objects", "20", "--object-size", "64",
		"--fsync-baseline", "--fsync-duration", "100ms", "--data-dir", t.TempDir())
	if status != exitOK {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, out, errOut)
	}
	t.Logf("\n%s", out)
	load, ok := parseBenchRow(t, out, "load")
	if !ok || load.ops == 0 || load.errors != 0 {
		t.Fatalf("no sound load row (%+v) in:\n%s", load, out)
	}
	commit, ok := parseBenchRow(t, out, "commit")
	if !ok || commit.ops == 0 || commit.errors != 0 || commit.conflicts != 0 {
		t.Fatalf("no sound commit row (%+v) in:\n%s", commit, out)
	}
	for _, want := range []string{"server " + ln.Addr().String(), "3 connection(s)", "mix 50:50",
		"3 connection(s) × 2 in flight", "20 preloaded objects of 64 bytes", "client cache off", "serial fsyncs per second", "commits per second / fsyncs per second"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// The storage holds the preload transaction and one transaction per
	// reported commit; the preloaded objects plus one per connection.
	stop()
	rep, err := storage.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Transactions != 1+commit.ops {
		t.Errorf("the storage has %d transactions; the bench reported %d commits after 1 preload", rep.Transactions, commit.ops)
	}
	if rep.Objects != 20+3*2 {
		t.Errorf("the storage has %d objects, want 20 preloaded + 6 committed to", rep.Objects)
	}
}

// TestBenchEmbedded runs `zrs bench` without --addr: it starts its own
// node and removes its data afterwards.
func TestBenchEmbedded(t *testing.T) {
	for _, protocol := range []string{node.ProtocolPickle, node.ProtocolMsgpack} {
		t.Run(protocol, func(t *testing.T) {
			dir := t.TempDir()
			status, out, errOut := runZrs(t, "bench", "--duration", "200ms", "--mix", "90:10",
				"--objects", "10", "--protocol", protocol, "--data-dir", dir)
			if status != exitOK {
				t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, out, errOut)
			}
			if !strings.Contains(out, "embedded node on 127.0.0.1:") || !strings.Contains(out, "("+protocol+",") {
				t.Errorf("output does not describe the embedded %s node:\n%s", protocol, out)
			}
			if row, ok := parseBenchRow(t, out, "load"); !ok || row.ops == 0 || row.errors != 0 {
				t.Errorf("no sound load row (%+v) in:\n%s", row, out)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("the bench left %d entries in its data directory", len(left))
			}
		})
	}
}

// TestBenchEmbeddedUnixSocket measures an embedded node listening on a
// Unix socket, with the network baseline over a socket too.
func TestBenchEmbeddedUnixSocket(t *testing.T) {
	dir := t.TempDir()
	status, out, errOut := runZrs(t, "bench", "--duration", "200ms", "--mix", "100:0", "--objects", "10",
		"--network", "unix", "--net-baseline", "--net-duration", "100ms", "--data-dir", dir)
	if status != exitOK {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, out, errOut)
	}
	if !regexp.MustCompile(`embedded node on /\S+/zeo\.sock `).MatchString(out) {
		t.Errorf("output does not name the embedded node's socket:\n%s", out)
	}
	if !regexp.MustCompile(`network baseline: [1-9]\d* round trips per second over 1 connection\(s\) \(Unix socket,`).MatchString(out) {
		t.Errorf("no Unix socket baseline in:\n%s", out)
	}
	if row, ok := parseBenchRow(t, out, "load"); !ok || row.ops == 0 || row.errors != 0 {
		t.Errorf("no sound load row (%+v) in:\n%s", row, out)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the bench left %d entries in its data directory", len(left))
	}
}

// TestBenchNodeProcess measures a node running as a child process, which
// stops gracefully and leaves nothing behind.
func TestBenchNodeProcess(t *testing.T) {
	t.Setenv(runAsZrsEnv, "1") // the child is this binary, running as zrs
	dir := t.TempDir()
	status, out, errOut := runZrs(t, "bench", "--node-process", "--duration", "200ms", "--mix", "80:20",
		"--objects", "10", "--connections", "2", "--data-dir", dir)
	if status != exitOK {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, out, errOut)
	}
	if !regexp.MustCompile(`node process on 127\.0\.0\.1:\d+ \(pickle,`).MatchString(out) {
		t.Errorf("output does not name the node process's address:\n%s", out)
	}
	for _, op := range []string{"load", "commit"} {
		if row, ok := parseBenchRow(t, out, op); !ok || row.ops == 0 || row.errors != 0 {
			t.Errorf("no sound %s row (%+v) in:\n%s", op, row, out)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the bench left %d entries in its data directory", len(left))
	}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--mix", "90"},
		{"--mix", "0:0"},
		{"--mix", "-1:2"},
		{"--connections", "0"},
		{"--inflight", "0"},
		{"--object-size", "0"},
		{"--objects", "0"},
		{"--protocol", "xml"},
		{"--addr", "127.0.0.1:1", "--protocol", "msgpack"},
		{"--network", "udp"},
		{"--addr", "127.0.0.1:1", "--network", "unix"},
		{"--addr", "127.0.0.1:1", "--node-process"},
	} {
		status, _, errOut := runZrs(t, append([]string{"bench", "--duration", "10ms"}, args...)...)
		if status != exitFailed || !strings.Contains(errOut, "bench:") {
			t.Errorf("bench %v: status %d, stderr %q", args, status, errOut)
		}
	}
}
