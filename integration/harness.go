// Package integration holds end-to-end tests that run real zrs node
// processes (the binary built from ./cmd/zrs) against each other, and the
// helpers to run them: building the binary once per test process, picking
// free ports, writing node configurations, starting, stopping, killing and
// restarting nodes with their logs captured, and waiting, always within a
// deadline, for a node or a data file to reach a transaction.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/storage"
)

// Timeouts bounding each step of a test.
const (
	// StartTimeout bounds how long a node may take to print its startup line.
	StartTimeout = 30 * time.Second
	// StopTimeout bounds a graceful stop before the node is killed.
	StopTimeout = 30 * time.Second
	// pollEvery is how often the Wait helpers look again.
	pollEvery = 10 * time.Millisecond
)

// ---------------------------------------------------------------------
// The binary.

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary returns the path of the zrs binary, building it on first use
// into a temporary directory that Main removes.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			build.err = err
			return
		}
		if build.dir, err = os.MkdirTemp("", "zrs-integration-"); err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(build.dir, "zrs")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goTool(), "build", "-o", build.path, "./cmd/zrs")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/zrs: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// Main runs the tests of a package using this one and then removes the
// binary built for them; call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// goTool finds the go command: on PATH, else in GOROOT.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// ModuleRoot returns the directory holding go.mod, searching upward from
// the working directory (a test runs in its package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// ---------------------------------------------------------------------
// Ports.

// usedPorts remembers the ports handed out in this test process, so that
// no two servers of a test are given the same one.
var usedPorts struct {
	mu   sync.Mutex
	used map[int]bool
}

// Ports are picked below Linux's default ephemeral range (32768-60999):
// a port from that range that was free a moment ago can be taken, before
// the server binds it, by the local end of any outgoing connection (and
// the tests make many, to ZooKeeper among others).
const (
	portLow  = 20000
	portHigh = 32767
)

// FreePort returns a loopback port that was free a moment ago, never the
// same one twice in a test process.
func FreePort(t testing.TB) int {
	t.Helper()
	usedPorts.mu.Lock()
	defer usedPorts.mu.Unlock()
	if usedPorts.used == nil {
		usedPorts.used = make(map[int]bool)
	}
	for range 1000 {
		port := portLow + rand.IntN(portHigh-portLow+1)
		if usedPorts.used[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		usedPorts.used[port] = true
		return port
	}
	t.Fatal("integration: no free port found")
	return 0
}

// FreeAddr returns a loopback address with a port from FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// ---------------------------------------------------------------------
// Node configuration.

// Config is what a test sets of a node's configuration; Render writes
// the HCL.
type Config struct {
	Name string
	// DataPath is the data file (default DIR/NAME/Data.fs in the test's
	// temporary directory).
	DataPath string
	// ZEOListen is the ZEO address (default: a free port, kept across
	// restarts).
	ZEOListen string
	// ReplicateTo and ReplicateFrom make the node a primary, a secondary
	// or a cascading secondary.
	ReplicateTo, ReplicateFrom string
	// Protocol is the replication protocol towards ReplicateFrom: "zrs"
	// or "zrs2.0" (default "zrs").
	Protocol string
	// KeepAlive is keep_alive_delay (default "1s").
	KeepAlive string
	// LogLevel is the log level (default "info").
	LogLevel string

	// ZooKeeper, when set, runs the node in ZooKeeper mode against these
	// servers (ReplicateTo is then required and ReplicateFrom unused).
	ZooKeeper []string
	// Root is the cluster's root path (default /zrs/main).
	Root string
	// SessionTimeout is zookeeper.session_timeout (default "2s").
	SessionTimeout string
	// SettleDelay is failover.settle_delay (default "200ms").
	SettleDelay string
	// Priority and NoFailover are the failover block's settings.
	Priority   int
	NoFailover bool
	// Synchronous and Strict set synchronous replication.
	Synchronous int
	Strict      bool
	// Upstream names a cascading secondary's preferred upstream node.
	Upstream string
	// HTTPListen is the node's HTTP endpoint (health checks, status,
	// metrics; default: a free port, kept across restarts).
	HTTPListen string
}

// Render returns the node's HCL configuration.
func (c Config) Render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "name = %q\n", c.Name)
	fmt.Fprintf(&b, "storage { path = %q }\n", c.DataPath)
	fmt.Fprintf(&b, "zeo { listen = %q }\n", c.ZEOListen)
	fmt.Fprintf(&b, "log { level = %q }\n", c.LogLevel)
	if c.HTTPListen != "" {
		fmt.Fprintf(&b, "http { listen = %q }\n", c.HTTPListen)
	}
	if c.ReplicateTo != "" || c.ReplicateFrom != "" {
		b.WriteString("replication {\n")
		if c.ReplicateTo != "" {
			fmt.Fprintf(&b, "  replicate_to = %q\n", c.ReplicateTo)
		}
		if c.ReplicateFrom != "" {
			fmt.Fprintf(&b, "  replicate_from = %q\n", c.ReplicateFrom)
		}
		fmt.Fprintf(&b, "  keep_alive_delay = %q\n", c.KeepAlive)
		fmt.Fprintf(&b, "  protocol = %q\n", c.Protocol)
		if c.Synchronous > 0 {
			fmt.Fprintf(&b, "  synchronous = %d\n  synchronous_strict = %t\n  commit_timeout = \"5s\"\n", c.Synchronous, c.Strict)
		}
		if c.Upstream != "" {
			fmt.Fprintf(&b, "  upstream = %q\n", c.Upstream)
		}
		b.WriteString("}\n")
	}
	if len(c.ZooKeeper) > 0 {
		quoted := make([]string, len(c.ZooKeeper))
		for i, s := range c.ZooKeeper {
			quoted[i] = strconv.Quote(s)
		}
		fmt.Fprintf(&b, "zookeeper {\n  servers = [%s]\n  root = %q\n  session_timeout = %q\n}\n",
			strings.Join(quoted, ", "), c.Root, c.SessionTimeout)
		fmt.Fprintf(&b, "failover {\n  priority = %d\n  no_failover = %t\n  settle_delay = %q\n}\n",
			c.Priority, c.NoFailover, c.SettleDelay)
	}
	return b.String()
}

// ---------------------------------------------------------------------
// Node processes.

// Node is a zrs node process that can be stopped and started again with
// the same configuration, ports and data file. Its stderr (all runs,
// appended) is kept in LogPath and shown with t.Log if the test fails (or
// always, when the environment sets ZRS_INTEGRATION_LOGS).
type Node struct {
	t          testing.TB
	Config     Config
	Dir        string
	ConfigPath string
	LogPath    string
	// ZEOAddr is where ZEO clients connect, from the startup line.
	ZEOAddr string
	// HTTPAddr is the node's HTTP endpoint (Config.HTTPListen).
	HTTPAddr string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the current process has exited
	waitErr error
	runs    int
}

// NewNode prepares a node (writing its configuration) without starting it.
func NewNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	if cfg.Name == "" {
		t.Fatal("integration: node needs a name")
	}
	dir := filepath.Join(t.TempDir(), cfg.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if cfg.DataPath == "" {
		cfg.DataPath = filepath.Join(dir, "Data.fs")
	}
	if cfg.ZEOListen == "" {
		cfg.ZEOListen = FreeAddr(t)
	}
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = FreeAddr(t)
	}
	if cfg.Protocol == "" {
		cfg.Protocol = "zrs"
	}
	if cfg.KeepAlive == "" {
		cfg.KeepAlive = "1s"
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	if len(cfg.ZooKeeper) > 0 {
		if cfg.Root == "" {
			cfg.Root = "/zrs/main"
		}
		if cfg.SessionTimeout == "" {
			cfg.SessionTimeout = "2s"
		}
		if cfg.SettleDelay == "" {
			cfg.SettleDelay = "200ms"
		}
		if cfg.ReplicateTo == "" {
			cfg.ReplicateTo = FreeAddr(t)
		}
	}
	n := &Node{
		t:          t,
		Config:     cfg,
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "node.hcl"),
		LogPath:    filepath.Join(dir, "stderr.log"),
		HTTPAddr:   cfg.HTTPListen,
	}
	if err := os.WriteFile(n.ConfigPath, []byte(cfg.Render()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.cleanup()
		if t.Failed() || os.Getenv("ZRS_INTEGRATION_LOGS") != "" {
			t.Logf("=== node %s: config %s\n%s=== node %s: stderr (%s)\n%s=== end of node %s",
				cfg.Name, n.ConfigPath, cfg.Render(), cfg.Name, n.LogPath, n.Log(), cfg.Name)
		}
	})
	return n
}

// StartNode prepares and starts a node.
func StartNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	n := NewNode(t, cfg)
	n.Start()
	return n
}

// Name returns the node's name.
func (n *Node) Name() string { return n.Config.Name }

// DataPath returns the node's data file.
func (n *Node) DataPath() string { return n.Config.DataPath }

// Running reports whether the node's process is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Start starts the node's process and waits for its startup line.
func (n *Node) Start() {
	n.t.Helper()
	if n.Running() {
		n.t.Fatalf("node %s: already running", n.Name())
	}
	logf, err := os.OpenFile(n.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	defer logf.Close()
	n.runs++
	fmt.Fprintf(logf, "--- start #%d at %s ---\n", n.runs, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(Binary(n.t), "node", "--config", n.ConfigPath)
	cmd.Dir = n.Dir
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("node %s: start: %v", n.Name(), err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		// Read stdout to the end so that the node never blocks on it;
		// the first line is the startup line.
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		close(lines)
		err := cmd.Wait()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(exited)
	}()
	n.mu.Lock()
	n.cmd, n.exited, n.waitErr = cmd, exited, nil
	n.mu.Unlock()

	timer := time.NewTimer(StartTimeout)
	defer timer.Stop()
	select {
	case line, ok := <-lines:
		if !ok {
			<-exited
			n.t.Fatalf("node %s exited before its startup line: %v", n.Name(), n.exitErr())
		}
		addr, ok := parseStartupLine(line, n.Name())
		if !ok {
			n.t.Fatalf("node %s: unexpected startup line %q", n.Name(), line)
		}
		n.ZEOAddr = addr
	case <-timer.C:
		n.Kill()
		n.t.Fatalf("node %s: no startup line within %s", n.Name(), StartTimeout)
	}
}

// parseStartupLine extracts ADDR from
// "zrs node NAME: ZEO clients connect to ADDR (...)".
func parseStartupLine(line, name string) (string, bool) {
	prefix := "zrs node " + name + ": ZEO clients connect to "
	rest, ok := strings.CutPrefix(line, prefix)
	if !ok {
		return "", false
	}
	addr, _, ok := strings.Cut(rest, " ")
	return addr, ok && addr != ""
}

func (n *Node) exitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.waitErr
}

// Stop stops the node gracefully with SIGTERM and waits for it to exit,
// failing the test if it does not exit within StopTimeout or exits with
// an error.
func (n *Node) Stop() {
	n.t.Helper()
	if err := n.signalAndWait(syscall.SIGTERM, StopTimeout); err != nil {
		n.t.Errorf("node %s: stop: %v", n.Name(), err)
	}
}

// Kill kills the node with SIGKILL and waits for it to exit.
func (n *Node) Kill() {
	n.t.Helper()
	if err := n.signalAndWait(syscall.SIGKILL, StopTimeout); err != nil &&
		!strings.Contains(err.Error(), "signal: killed") {
		n.t.Errorf("node %s: kill: %v", n.Name(), err)
	}
}

// Restart stops the node gracefully and starts it again.
func (n *Node) Restart() {
	n.t.Helper()
	n.Stop()
	n.Start()
}

// signalAndWait sends sig and waits for the process to exit, killing it
// if it has not after timeout; it returns the process's exit error.
func (n *Node) signalAndWait(sig syscall.Signal, timeout time.Duration) error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return fmt.Errorf("had already exited: %v", n.exitErr())
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-exited:
		return n.exitErr()
	case <-timer.C:
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("did not exit within %s of %s; killed", timeout, sig)
	}
}

// cleanup stops a node still running when its test ends.
func (n *Node) cleanup() {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	if n.Running() {
		if err := n.signalAndWait(syscall.SIGTERM, StopTimeout); err != nil {
			n.t.Errorf("node %s: stop at cleanup: %v", n.Name(), err)
		}
	}
}

// Log returns everything the node wrote to stderr so far.
func (n *Node) Log() string {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// LogLines returns the lines of the node's log containing every one of
// substrs.
func (n *Node) LogLines(substrs ...string) []string {
	var out []string
	for line := range strings.SplitSeq(n.Log(), "\n") {
		ok := true
		for _, s := range substrs {
			if !strings.Contains(line, s) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// WaitLog waits until a line of the node's log contains every one of
// substrs and returns the first such line.
func (n *Node) WaitLog(timeout time.Duration, substrs ...string) string {
	n.t.Helper()
	var line string
	WaitFor(n.t, timeout, fmt.Sprintf("node %s to log %q", n.Name(), substrs), func() bool {
		if lines := n.LogLines(substrs...); len(lines) > 0 {
			line = lines[0]
			return true
		}
		return false
	})
	return line
}

// Dial connects a read-only Go client to the node.
func (n *Node) Dial(ctx context.Context, opts client.Options) (*client.Client, error) {
	opts.ReadOnly = true
	return client.Dial(ctx, n.ZEOAddr, opts)
}

// LastTid asks the running node for its last transaction (what its ZEO
// clients see: on a secondary, only transactions applied durably).
func (n *Node) LastTid(ctx context.Context) (storage.Tid, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := n.Dial(ctx, client.Options{CacheBytes: -1, MaxBackoff: time.Second})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LastTransaction(), nil
}

// WaitTid waits until the node reports tid as its last transaction. It
// fails at once if the node reports a later one or its process exits.
func (n *Node) WaitTid(tid storage.Tid, timeout time.Duration) {
	n.t.Helper()
	var last storage.Tid
	var lastErr error
	WaitFor(n.t, timeout, fmt.Sprintf("node %s to reach tid %s", n.Name(), tid), func() bool {
		if !n.Running() {
			n.t.Fatalf("node %s exited while waiting for tid %s: %v", n.Name(), tid, n.exitErr())
		}
		last, lastErr = n.LastTid(context.Background())
		if lastErr == nil && last > tid {
			n.t.Fatalf("node %s is at tid %s, past the awaited %s", n.Name(), last, tid)
		}
		return lastErr == nil && last == tid
	}, func() string { return fmt.Sprintf("last tid %s, error %v", last, lastErr) })
}

// WaitFor polls cond until it is true, failing the test after timeout.
// detail, if given, adds to the failure message.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %s waiting for %s", timeout, what)
			for _, d := range detail {
				msg += " (" + d() + ")"
			}
			t.Fatal(msg)
		}
		time.Sleep(pollEvery)
	}
}

// ---------------------------------------------------------------------
// Data files.

// FileLastTid opens the data file read-only (allowed while a node has it
// open for writing) and returns its last sound transaction.
func FileLastTid(path string) (storage.Tid, error) {
	s, err := storage.Open(path, storage.Options{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	return s.LastTransaction(), nil
}

// WaitFileTid waits until the data file's last transaction is tid.
func WaitFileTid(t testing.TB, path string, tid storage.Tid, timeout time.Duration) {
	t.Helper()
	var last storage.Tid
	var lastErr error
	WaitFor(t, timeout, fmt.Sprintf("%s to reach tid %s", path, tid), func() bool {
		last, lastErr = FileLastTid(path)
		return lastErr == nil && last == tid
	}, func() string { return fmt.Sprintf("last tid %s, error %v", last, lastErr) })
}

// FileSize returns the size of path, 0 if it does not exist.
func FileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// SameFile fails the test unless the two files are byte-identical,
// naming the first differing offset.
func SameFile(t testing.TB, want, got string) {
	t.Helper()
	a, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		return
	}
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	t.Fatalf("%s (%d bytes) differs from %s (%d bytes) from offset %d", got, len(b), want, len(a), i)
}

// Verify runs `zrs verify PATH` and fails the test unless it passes.
func Verify(t testing.TB, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, Binary(t), "verify", path).CombinedOutput()
	if err != nil {
		t.Fatalf("zrs verify %s: %v\n%s", path, err, out)
	}
	return string(out)
}

// CopyFile copies the file src to dst.
func CopyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// FillDatabase appends txns transactions to the data file at path (which
// must not be in use by a node), deterministically from seed: each
// changes one to four of a few thousand objects with 40–400 byte
// revisions, and every 97th undoes the one before it, so that the file
// holds backpointers too. It commits with TpcFinishQueued and flushes
// every 500 transactions, which is fast. It returns the last tid.
func FillDatabase(t testing.TB, path string, txns int, seed uint64) storage.Tid {
	t.Helper()
	s, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const objects = 3000
	serials := make(map[storage.Oid]storage.Tid)
	var prevTid storage.Tid
	fail := func(err error) {
		t.Helper()
		t.Fatalf("fill %s: %v", path, err)
	}
	for i := range txns {
		undo := i%97 == 96 && prevTid != 0
		if undo {
			// Undo reads the undone transaction from the committed file.
			if err := s.Flush(); err != nil {
				fail(err)
			}
		}
		txn, err := s.TpcBegin(ctx, storage.TxnMeta{
			User:        []byte(fmt.Sprintf("user%d", i%7)),
			Description: []byte(fmt.Sprintf("transaction %d", i)),
		})
		if err != nil {
			fail(err)
		}
		var written []storage.Oid
		if undo {
			oids, err := txn.Undo([]byte(base64.StdEncoding.EncodeToString(prevTid.Bytes())))
			if err != nil {
				fail(err)
			}
			written = oids
		} else {
			seen := map[storage.Oid]bool{}
			for range 1 + rng.IntN(4) {
				oid := storage.Oid(rng.IntN(objects))
				if seen[oid] {
					continue
				}
				seen[oid] = true
				data := make([]byte, 40+rng.IntN(360))
				for j := range data {
					data[j] = byte(rng.Uint32())
				}
				if err := txn.Store(oid, serials[oid], data); err != nil {
					fail(err)
				}
				written = append(written, oid)
			}
		}
		if err := txn.TpcVote(); err != nil {
			fail(err)
		}
		tid, err := txn.TpcFinishQueued(nil)
		if err != nil {
			fail(err)
		}
		for _, oid := range written {
			serials[oid] = tid
		}
		prevTid = tid
		if i%500 == 499 {
			if err := s.Flush(); err != nil {
				fail(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		fail(err)
	}
	return s.LastTransaction()
}

// Freeze stops the node's process with SIGSTOP (as a long GC pause or a
// hung VM would) without it noticing, and returns once every thread has
// stopped: a request sent afterwards is handled only after Thaw.
func (n *Node) Freeze() {
	n.t.Helper()
	n.signal(syscall.SIGSTOP)
	n.mu.Lock()
	pid := n.cmd.Process.Pid
	n.mu.Unlock()
	WaitFor(n.t, 10*time.Second, fmt.Sprintf("node %s's threads to stop", n.Name()), func() bool {
		return allThreadsStopped(pid)
	})
}

// allThreadsStopped reports whether every thread of process pid is in
// the stopped state ('T' in /proc/PID/task/TID/stat).
func allThreadsStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// The state follows the command name, which is in parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) || (stat[i+2] != 'T' && stat[i+2] != 't') {
			return false
		}
	}
	return true
}

// Thaw resumes a frozen node with SIGCONT.
func (n *Node) Thaw() { n.signal(syscall.SIGCONT) }

func (n *Node) signal(sig syscall.Signal) {
	n.t.Helper()
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		n.t.Fatalf("node %s: not running", n.Name())
	}
	if err := cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("node %s: %v: %v", n.Name(), sig, err)
	}
}
