package integration

// Real Apache ZooKeeper servers for tests: a standalone server or an
// ensemble on free loopback ports under t.TempDir(), each a java process
// whose output goes to a log file that is dumped with t.Log when the test
// fails (or always, when ZRS_INTEGRATION_LOGS is set). Every process is
// killed when the test ends. A missing java or ZooKeeper fails the test:
// run scripts/install-deps.sh.

import (
	"errors"
	"fmt"
	"io"
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
)

// Timings of the ZooKeeper servers the harness runs.
const (
	// ZKTickTime is the servers' tickTime. ZooKeeper accepts session
	// timeouts from 2 to 20 ticks: 500 ms to 5 s here.
	ZKTickTime = 250 * time.Millisecond
	// ZKStartTimeout bounds how long a server (or an ensemble) may take to
	// start serving.
	ZKStartTimeout = 60 * time.Second
	// zkStopTimeout bounds a graceful stop before the server is killed.
	zkStopTimeout = 15 * time.Second
	// zkPollEvery is how often readiness is probed.
	zkPollEvery = 50 * time.Millisecond
)

// ZKCluster is a standalone ZooKeeper server or an ensemble run by a test.
// Servers are numbered from 0.
type ZKCluster struct {
	t       testing.TB
	dir     string
	java    string
	cp      string
	servers []*zkServer
}

type zkServer struct {
	id         int // myid, 1-based
	clientAddr string
	dir        string
	cfgPath    string
	logPath    string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has exited
	runs   int
	want   bool // started and not stopped or killed since
}

// zkDebianJar is where Debian's zookeeper package puts the server; the
// jar's manifest names the libraries it needs.
const zkDebianJar = "/usr/share/java/zookeeper.jar"

// zkDebianLogJars bind ZooKeeper's slf4j logging to log4j 1.2 so that the
// servers' logs reach the log files; both come with Debian's package.
var zkDebianLogJars = []string{
	"/usr/share/java/slf4j-log4j12.jar",
	"/usr/share/java/log4j-1.2.jar",
}

const zkLog4j = `log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n
`

// zkFind locates java and ZooKeeper's classpath. ZRS_ZK_CLASSPATH, when
// set, replaces the Debian jars (e.g. "/opt/zookeeper/lib/*:/opt/zookeeper/conf").
func zkFind(confDir string) (java, cp string, err error) {
	const hint = "run scripts/install-deps.sh (or: apt-get install zookeeper)"
	java, err = exec.LookPath("java")
	if err != nil {
		if home := os.Getenv("JAVA_HOME"); home != "" {
			if p := filepath.Join(home, "bin", "java"); zkIsFile(p) {
				java, err = p, nil
			}
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("integration: no java runtime found (%v); ZooKeeper tests need one: %s", err, hint)
	}
	if env := os.Getenv("ZRS_ZK_CLASSPATH"); env != "" {
		return java, confDir + string(os.PathListSeparator) + env, nil
	}
	if !zkIsFile(zkDebianJar) {
		return "", "", fmt.Errorf("integration: ZooKeeper not found (no %s and ZRS_ZK_CLASSPATH is unset): %s", zkDebianJar, hint)
	}
	parts := []string{confDir, zkDebianJar}
	for _, j := range zkDebianLogJars {
		if zkIsFile(j) {
			parts = append(parts, j)
		}
	}
	return java, strings.Join(parts, string(os.PathListSeparator)), nil
}

func zkIsFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// ZKStandalone starts one standalone ZooKeeper server and waits until it
// serves requests.
func ZKStandalone(t testing.TB) *ZKCluster {
	t.Helper()
	return zkStart(t, 1)
}

// ZKEnsemble starts an ensemble of n servers and waits until every one
// serves requests and one of them is the leader.
func ZKEnsemble(t testing.TB, n int) *ZKCluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("integration: ZKEnsemble needs at least one server, not %d", n)
	}
	return zkStart(t, n)
}

func zkStart(t testing.TB, n int) *ZKCluster {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "zookeeper")
	confDir := filepath.Join(dir, "conf")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	java, cp, err := zkFind(confDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "log4j.properties"), []byte(zkLog4j), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &ZKCluster{t: t, dir: dir, java: java, cp: cp}
	type peer struct{ client, quorum, election int }
	peers := make([]peer, n)
	for i := range peers {
		peers[i] = peer{FreePort(t), FreePort(t), FreePort(t)}
	}
	tick := int(ZKTickTime / time.Millisecond)
	for i := range n {
		s := &zkServer{
			id:         i + 1,
			clientAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(peers[i].client)),
			dir:        filepath.Join(dir, fmt.Sprintf("server%d", i)),
		}
		s.cfgPath = filepath.Join(s.dir, "zoo.cfg")
		s.logPath = filepath.Join(s.dir, "zookeeper.log")
		data := filepath.Join(s.dir, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			t.Fatal(err)
		}
		var cfg strings.Builder
		fmt.Fprintf(&cfg, "tickTime=%d\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n", tick, data, peers[i].client)
		cfg.WriteString("admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n")
		if n > 1 {
			cfg.WriteString("initLimit=20\nsyncLimit=8\n")
			for j, p := range peers {
				fmt.Fprintf(&cfg, "server.%d=127.0.0.1:%d:%d\n", j+1, p.quorum, p.election)
			}
			if err := os.WriteFile(filepath.Join(data, "myid"), []byte(fmt.Sprintf("%d\n", s.id)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(s.cfgPath, []byte(cfg.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		c.servers = append(c.servers, s)
	}
	t.Cleanup(c.cleanup)
	for i := range c.servers {
		if err := c.launch(i); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitServing(ZKStartTimeout)
	return c
}

// Servers returns the client addresses (host:port) of all servers,
// running or not.
func (c *ZKCluster) Servers() []string {
	out := make([]string, len(c.servers))
	for i, s := range c.servers {
		out[i] = s.clientAddr
	}
	return out
}

// Server returns the client address of server i.
func (c *ZKCluster) Server(i int) string { return c.server(i).clientAddr }

// Len returns the number of servers.
func (c *ZKCluster) Len() int { return len(c.servers) }

func (c *ZKCluster) server(i int) *zkServer {
	c.t.Helper()
	if i < 0 || i >= len(c.servers) {
		c.t.Fatalf("integration: no ZooKeeper server %d (have %d)", i, len(c.servers))
	}
	return c.servers[i]
}

// launch starts server i's process without waiting for it.
func (c *ZKCluster) launch(i int) error {
	s := c.servers[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		select {
		case <-s.exited:
		default:
			return fmt.Errorf("integration: ZooKeeper server %d is already running", i)
		}
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	s.runs++
	fmt.Fprintf(logf, "=== integration: start #%d of ZooKeeper server %d (%s)\n", s.runs, i, s.clientAddr)
	cmd := exec.Command(c.java,
		"-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Djava.net.preferIPv4Stack=true",
		"-Dzookeeper.admin.enableServer=false",
		"-Dzookeeper.jmx.log4j.disable=true",
		"-cp", c.cp,
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", s.cfgPath)
	cmd.Dir = s.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = zkSysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("integration: starting ZooKeeper server %d: %v", i, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited, s.want = cmd, exited, true
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== integration: ZooKeeper server %d exited: %v\n", i, err)
		logf.Close()
		close(exited)
	}()
	return nil
}

// Running reports whether server i's process is running.
func (c *ZKCluster) Running(i int) bool {
	s := c.server(i)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running()
}

func (s *zkServer) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Start starts server i again after Stop or Kill. It waits until the
// server serves requests when a majority of the ensemble is running (so
// that it can), else only until it answers ruok.
func (c *ZKCluster) Start(i int) {
	c.t.Helper()
	c.server(i)
	if err := c.launch(i); err != nil {
		c.t.Fatal(err)
	}
	running := 0
	for j := range c.servers {
		if c.Running(j) {
			running++
		}
	}
	deadline := time.Now().Add(ZKStartTimeout)
	for {
		if !c.Running(i) {
			c.t.Fatalf("integration: ZooKeeper server %d exited while starting:\n%s", i, zkTail(c.Log(i), 100))
		}
		if ok, _ := c.ruok(i); ok && (running <= len(c.servers)/2 || c.Mode(i) != "") {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("integration: ZooKeeper server %d not ready within %s:\n%s", i, ZKStartTimeout, zkTail(c.Log(i), 100))
		}
		time.Sleep(zkPollEvery)
	}
}

// Stop stops server i gracefully (SIGTERM) and waits for it to exit,
// killing it after a timeout.
func (c *ZKCluster) Stop(i int) {
	c.t.Helper()
	if err := c.signal(i, syscall.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
}

// Kill kills server i with SIGKILL and waits for it to exit.
func (c *ZKCluster) Kill(i int) {
	c.t.Helper()
	if err := c.signal(i, syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
}

func (c *ZKCluster) signal(i int, sig syscall.Signal) error {
	s := c.server(i)
	s.mu.Lock()
	cmd, exited, running := s.cmd, s.exited, s.running()
	s.want = false
	s.mu.Unlock()
	if !running {
		return fmt.Errorf("integration: ZooKeeper server %d is not running", i)
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	timer := time.NewTimer(zkStopTimeout)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-timer.C:
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("integration: ZooKeeper server %d did not exit within %s of %s; killed", i, zkStopTimeout, sig)
	}
}

// Mode returns what server i says of itself in `srvr` ("standalone",
// "leader", "follower", ...), or "" when it is down or not serving.
func (c *ZKCluster) Mode(i int) string {
	out, err := ZKCommand(c.server(i).clientAddr, "srvr")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(out, "\n") {
		if m, ok := strings.CutPrefix(line, "Mode: "); ok {
			return strings.TrimSpace(m)
		}
	}
	return ""
}

// Leader returns the index of the server that is the ensemble's leader, or
// -1 if none is; a serving standalone server counts as its own leader.
func (c *ZKCluster) Leader() int {
	for i := range c.servers {
		if !c.Running(i) {
			continue
		}
		if m := c.Mode(i); m == "leader" || m == "standalone" {
			return i
		}
	}
	return -1
}

// WaitServing waits until every running server answers ruok with imok and
// serves requests (its `srvr` names a mode), and one of them is the
// leader (or standalone);
// it fails the test after timeout, or at once if a server that was not
// stopped has exited.
func (c *ZKCluster) WaitServing(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var waiting []string
		for i, s := range c.servers {
			s.mu.Lock()
			running, want := s.running(), s.want
			s.mu.Unlock()
			if !running {
				if want {
					c.t.Fatalf("integration: ZooKeeper server %d exited unexpectedly:\n%s", i, zkTail(c.Log(i), 100))
				}
				continue
			}
			if ok, err := c.ruok(i); !ok {
				waiting = append(waiting, fmt.Sprintf("server %d (%s) does not answer ruok with imok (%v)", i, s.clientAddr, err))
			} else if c.Mode(i) == "" {
				// imok only says the process runs: until it has joined a
				// quorum, srvr says it is "not currently serving requests".
				waiting = append(waiting, fmt.Sprintf("server %d (%s) not serving yet", i, s.clientAddr))
			}
		}
		if len(waiting) == 0 && c.Leader() >= 0 {
			return
		}
		if len(waiting) == 0 {
			waiting = append(waiting, "no leader")
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for i := range c.servers {
				fmt.Fprintf(&logs, "=== ZooKeeper server %d log:\n%s\n", i, zkTail(c.Log(i), 60))
			}
			c.t.Fatalf("integration: ZooKeeper not serving within %s: %s\n%s", timeout, strings.Join(waiting, "; "), logs.String())
		}
		time.Sleep(zkPollEvery)
	}
}

func (c *ZKCluster) ruok(i int) (bool, error) {
	out, err := ZKCommand(c.servers[i].clientAddr, "ruok")
	return out == "imok", err
}

// ZKCommand sends a four-letter-word command ("ruok", "srvr", "stat",
// "mntr", ...) to the ZooKeeper server at addr and returns its answer.
func ZKCommand(addr, cmd string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, cmd); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	if err != nil && len(b) == 0 {
		return "", err
	}
	return string(b), nil
}

// Log returns everything server i has written so far.
func (c *ZKCluster) Log(i int) string {
	b, err := os.ReadFile(c.server(i).logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// zkTail returns the last n lines of s.
func zkTail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d earlier lines ...]\n", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}

// cleanup kills every server still running and dumps the logs when the
// test failed.
func (c *ZKCluster) cleanup() {
	for _, s := range c.servers {
		s.mu.Lock()
		cmd, exited, running := s.cmd, s.exited, s.running()
		s.mu.Unlock()
		if running {
			cmd.Process.Kill()
			<-exited
		}
	}
	if c.t.Failed() || os.Getenv("ZRS_INTEGRATION_LOGS") != "" {
		for i, s := range c.servers {
			cfg, _ := os.ReadFile(s.cfgPath)
			c.t.Logf("=== ZooKeeper server %d (%s): %s\n%s=== log (%s):\n%s=== end of ZooKeeper server %d",
				i, s.clientAddr, s.cfgPath, cfg, s.logPath, zkTail(c.Log(i), 400), i)
		}
	}
}

// ---------------------------------------------------------------------
// Network faults between a ZooKeeper client in the test process and the
// servers.

// ZKNetFault is a dialer for ZooKeeper clients (it has the signature of
// go-zookeeper's zk.Dialer) that can cut the client off: Cut closes every
// connection it made and refuses new ones until Heal. Cutting a client off
// for longer than its session timeout makes the servers expire its session,
// which the client learns when it reconnects after Heal.
type ZKNetFault struct {
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
	dials int
}

// NewZKNetFault returns a dialer that works until Cut.
func NewZKNetFault() *ZKNetFault {
	return &ZKNetFault{conns: make(map[net.Conn]bool)}
}

// Dial connects like net.DialTimeout unless the network is cut.
func (f *ZKNetFault) Dial(network, address string, timeout time.Duration) (net.Conn, error) {
	f.mu.Lock()
	cut := f.cut
	f.dials++
	f.mu.Unlock()
	if cut {
		return nil, fmt.Errorf("dial %s %s: network cut by the test", network, address)
	}
	conn, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		conn.Close()
		return nil, fmt.Errorf("dial %s %s: network cut by the test", network, address)
	}
	fc := &zkFaultConn{Conn: conn, f: f}
	f.conns[fc] = true
	return fc, nil
}

// Cut closes every open connection and refuses new ones.
func (f *ZKNetFault) Cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = true
	for c := range f.conns {
		c.(*zkFaultConn).Conn.Close()
	}
	f.conns = make(map[net.Conn]bool)
}

// Heal lets connections through again.
func (f *ZKNetFault) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = false
}

// Dials returns how many connections were attempted so far.
func (f *ZKNetFault) Dials() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials
}

type zkFaultConn struct {
	net.Conn
	f *ZKNetFault
}

func (c *zkFaultConn) Close() error {
	c.f.mu.Lock()
	delete(c.f.conns, c)
	c.f.mu.Unlock()
	return c.Conn.Close()
}
