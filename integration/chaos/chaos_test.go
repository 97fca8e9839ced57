package chaos

// The chaos driver: runs the docker-compose.yml cluster with the workload
// container, injects faults on a seeded schedule, and checks the recorded
// history, the end state of every node, the node logs and the data files.
//
//	go test ./integration/chaos -run TestChaos -timeout 0 -v \
//	    -chaos -chaos.rounds=8 -chaos.seed=1 -chaos.results=$PWD/chaos-results
//
// Without -chaos the test is skipped; with it, a missing docker fails it.
// Needs root on the host for the partitions: they are iptables rules
// inserted into the primary's network namespace from the host (nsenter
// --net=/proc/<pid>/ns/net iptables ...), since the images carry no
// iptables; the host's iptables is installed with apt-get when missing.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/go-zookeeper/zk"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/registry"
	"github.com/zrs-go/zrs/storage"
)

var (
	flagChaos   = flag.Bool("chaos", false, "run the chaos suite against docker-compose.yml (needs docker and root)")
	flagRounds  = flag.Int("chaos.rounds", 8, "faults to inject")
	flagSeed    = flag.Int64("chaos.seed", 0, "seed of the fault schedule and the workload (0: from the clock)")
	flagResults = flag.String("chaos.results", "", "directory under which the run's results go (default <repo>/chaos-results)")
	flagProject = flag.String("chaos.project", "zrschaos", "docker compose project name (kept apart from `make compose-up`'s)")
	flagFaults  = flag.String("chaos.faults", "", "comma-separated fault kinds to choose from (default: all)")
	flagKeep    = flag.Bool("chaos.keep", false, "leave the cluster running at the end (default: docker compose down -v)")
	flagKeys    = flag.Int("chaos.keys", 200, "keys of the workload (must match docker-compose.yml's workload command)")
	flagRecheck = flag.String("chaos.recheck", "", "run the history checks again on a results `DIR` (history.jsonl, finals.json, compose.log)")
)

// Fault kinds.
const (
	FaultKillPrimary          = "kill-primary"
	FaultPausePrimary         = "pause-primary"
	FaultPartitionZK          = "partition-primary-zookeeper"
	FaultPartitionSecondaries = "partition-primary-secondaries"
	FaultPartitionAll         = "partition-primary-all"
	FaultKillZKLeader         = "kill-zookeeper-leader"
	FaultZKQuorum             = "zookeeper-quorum-loss"
	FaultRestartSecondary     = "restart-secondary-catching-up"
)

// AllFaults are the kinds of faults the driver injects.
var AllFaults = []string{FaultKillPrimary, FaultPausePrimary, FaultPartitionZK, FaultPartitionSecondaries,
	FaultPartitionAll, FaultKillZKLeader, FaultZKQuorum, FaultRestartSecondary}

// Schedule returns n fault kinds drawn from kinds: consecutive seeded
// shuffles, so that every kind comes up once per len(kinds) rounds.
func Schedule(rng *rand.Rand, kinds []string, n int) []string {
	var out []string
	for len(out) < n {
		p := append([]string(nil), kinds...)
		rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		out = append(out, p...)
	}
	return out[:n]
}

const (
	zkRoot         = "/zrs/main"
	sessionTimeout = 4 * time.Second
	recoverTimeout = 180 * time.Second
)

var (
	zrsNodes = []string{"zrs1", "zrs2", "zrs3"}
	zkNodes  = []string{"zk1", "zk2", "zk3"}
)

type env struct {
	t       *testing.T
	root    string // the repository
	dir     string // this run's results
	project string
	compose []string
	rng     *rand.Rand

	logMu sync.Mutex
	logF  *os.File

	zkMu sync.Mutex
	zk   *zk.Conn

	idMu sync.Mutex
	ids  map[string]string // service -> container id
}

func (e *env) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.t.Log(msg)
	e.logMu.Lock()
	defer e.logMu.Unlock()
	if e.logF != nil {
		fmt.Fprintf(e.logF, "%s %s\n", time.Now().UTC().Format("15:04:05.000"), msg)
	}
}

// run runs a command in the repository and returns its combined output.
func (e *env) run(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = e.root
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(out.String(), 2000))
	}
	return out.String(), err
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// dc runs the compose command of the project.
func (e *env) dc(timeout time.Duration, args ...string) (string, error) {
	full := append(append([]string{}, e.compose[1:]...), args...)
	return e.run(timeout, nil, e.compose[0], full...)
}

func (e *env) must(out string, err error) string {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) containerID(service string) (string, error) {
	e.idMu.Lock()
	defer e.idMu.Unlock()
	if id, ok := e.ids[service]; ok {
		return id, nil
	}
	out, err := e.dc(30*time.Second, "ps", "-q", service)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(out)
	if id == "" {
		return "", fmt.Errorf("no container for %s", service)
	}
	id = strings.Fields(id)[0]
	if e.ids == nil {
		e.ids = map[string]string{}
	}
	// A container keeps its id through kill, stop, start and pause.
	e.ids[service] = id
	return id, nil
}

type cstate struct {
	id, ip, status, health string
	pid                    int
	paused                 bool
}

func (e *env) inspect(service string) (cstate, error) {
	id, err := e.containerID(service)
	if err != nil {
		return cstate{}, err
	}
	out, err := e.run(30*time.Second, nil, "docker", "inspect", "-f",
		`{{.State.Status}} {{.State.Pid}} {{.State.Paused}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}`, id)
	if err != nil {
		return cstate{}, err
	}
	f := strings.Fields(out)
	if len(f) < 4 {
		return cstate{}, fmt.Errorf("inspect %s: %q", service, out)
	}
	st := cstate{id: id, status: f[0], paused: f[2] == "true", health: f[3]}
	fmt.Sscan(f[1], &st.pid)
	if len(f) > 4 {
		st.ip = f[4]
	}
	return st, nil
}

// allRunning reports whether every container of the cluster runs (and is
// not paused), with one docker inspect.
func (e *env) allRunning() bool {
	args := []string{"inspect", "-f", "{{.State.Status}}/{{.State.Paused}}"}
	for _, s := range append(append([]string{}, zkNodes...), zrsNodes...) {
		id, err := e.containerID(s)
		if err != nil {
			return false
		}
		args = append(args, id)
	}
	out, err := e.run(30*time.Second, nil, "docker", args...)
	if err != nil {
		return false
	}
	for _, l := range strings.Fields(out) {
		if l != "running/false" {
			return false
		}
	}
	return true
}

func (e *env) docker(args ...string) error {
	_, err := e.run(60*time.Second, nil, "docker", args...)
	return err
}

// --- ZooKeeper, from the host -------------------------------------------------

func (e *env) zkServers() ([]string, error) {
	var servers []string
	for _, z := range zkNodes {
		st, err := e.inspect(z)
		if err != nil {
			return nil, err
		}
		if st.ip != "" {
			servers = append(servers, st.ip+":2181")
		}
	}
	if len(servers) == 0 {
		return nil, errors.New("no ZooKeeper container has an address")
	}
	return servers, nil
}

// reconnectZK (re)opens the driver's ZooKeeper connection with the
// servers' current addresses.
func (e *env) reconnectZK() error {
	servers, err := e.zkServers()
	if err != nil {
		return err
	}
	conn, _, err := zk.Connect(servers, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(nopLogger{}))
	if err != nil {
		return err
	}
	e.zkMu.Lock()
	old := e.zk
	e.zk = conn
	e.zkMu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

type view struct {
	primary registry.PrimaryRecord
	nodes   map[string]registry.NodeRecord
	sync    registry.SyncRecord
}

func (e *env) view() (view, error) {
	e.zkMu.Lock()
	conn := e.zk
	e.zkMu.Unlock()
	if conn == nil || conn.State() != zk.StateHasSession {
		return view{}, errors.New("no ZooKeeper session")
	}
	p := registry.PathsUnder(zkRoot)
	v := view{nodes: map[string]registry.NodeRecord{}}
	data, _, err := conn.Get(p.Primary)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return v, err
	}
	if err == nil {
		if err := json.Unmarshal(data, &v.primary); err != nil {
			return v, err
		}
	}
	names, _, err := conn.Children(p.Nodes)
	if err != nil {
		return v, err
	}
	for _, n := range names {
		data, _, err := conn.Get(p.Node(n))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return v, err
		}
		var rec registry.NodeRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return v, err
		}
		v.nodes[n] = rec
	}
	if data, _, err := conn.Get(p.Sync); err == nil && len(data) > 0 {
		_ = json.Unmarshal(data, &v.sync)
	}
	return v, nil
}

// healthy: one primary (the primary znode's), the two other nodes
// secondaries, and (once there are commits) a synchronous member in the
// primary's epoch.
func (v view) healthy() bool {
	if v.primary.Name == "" || len(v.nodes) != len(zrsNodes) {
		return false
	}
	// A synchronous member is named once it has acknowledged a commit
	// of this epoch: required once there are commits.
	if v.nodes[v.primary.Name].LastTid != 0 && (len(v.sync.Members) == 0 || v.sync.Epoch != v.primary.Epoch) {
		return false
	}
	for _, n := range v.nodes {
		want := registry.RoleSecondary
		if n.Name == v.primary.Name {
			want = registry.RolePrimary
		}
		if n.Role != want {
			return false
		}
	}
	return true
}

func (v view) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "primary=%s epoch=%d sync=%v", v.primary.Name, v.primary.Epoch, v.sync.Members)
	names := make([]string, 0, len(v.nodes))
	for n := range v.nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := v.nodes[n]
		fmt.Fprintf(&b, " %s:%s/%d/%s", n, r.Role, r.Epoch, r.LastTid)
	}
	return b.String()
}

// waitRecovered waits until the cluster is healthy, every secondary has
// caught up with where the primary was when it first looked healthy, the
// primary has committed since (when commit is set: the workload's writes
// flow again), and every container runs. It returns the final view.
func (e *env) waitRecovered(timeout time.Duration, commit bool) (view, error) {
	deadline := time.Now().Add(timeout)
	var (
		mark     storage.Tid
		markSet  bool
		last     view
		lastErr  error
		reconnAt = time.Now().Add(10 * time.Second)
	)
	for time.Now().Before(deadline) {
		v, err := e.view()
		if err != nil {
			lastErr = err
			if time.Now().After(reconnAt) {
				_ = e.reconnectZK()
				reconnAt = time.Now().Add(10 * time.Second)
			}
			time.Sleep(250 * time.Millisecond)
			continue
		}
		last = v
		if !v.healthy() {
			markSet = false
			time.Sleep(250 * time.Millisecond)
			continue
		}
		p := v.nodes[v.primary.Name].LastTid
		if !markSet {
			mark, markSet = p, true
			time.Sleep(300 * time.Millisecond)
			continue
		}
		caught := !commit || p > mark
		for _, n := range v.nodes {
			if n.LastTid < mark {
				caught = false
			}
		}
		if !caught {
			time.Sleep(250 * time.Millisecond)
			continue
		}
		if e.allRunning() {
			return v, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return last, fmt.Errorf("the cluster did not recover within %v: last view %v (error %v)", timeout, last, lastErr)
}

// --- faults ---------------------------------------------------------------------

// netPid returns the pid of service's container, whose network namespace
// the partitions change.
func (e *env) netPid(service string) (int, error) {
	st, err := e.inspect(service)
	if err != nil {
		return 0, err
	}
	if st.pid == 0 {
		return 0, fmt.Errorf("%s is not running", service)
	}
	return st.pid, nil
}

// iptables runs iptables in the network namespace of process pid.
func (e *env) iptables(pid int, rules ...[]string) error {
	for _, r := range rules {
		args := append([]string{"--net=/proc/" + fmt.Sprint(pid) + "/ns/net", "iptables", "-w"}, r...)
		if _, err := e.run(30*time.Second, nil, "nsenter", args...); err != nil {
			return err
		}
	}
	return nil
}

// partition cuts the container of pid off from the given addresses (nil:
// from everything on its network).
func (e *env) partition(pid int, peers []string) error {
	if peers == nil {
		return e.iptables(pid,
			[]string{"-I", "INPUT", "-i", "eth0", "-j", "DROP"},
			[]string{"-I", "OUTPUT", "-o", "eth0", "-j", "DROP"})
	}
	var rules [][]string
	for _, ip := range peers {
		rules = append(rules, []string{"-I", "INPUT", "-s", ip, "-j", "DROP"}, []string{"-I", "OUTPUT", "-d", ip, "-j", "DROP"})
	}
	return e.iptables(pid, rules...)
}

func (e *env) heal(pid int) error {
	return e.iptables(pid, []string{"-F", "INPUT"}, []string{"-F", "OUTPUT"})
}

func (e *env) ips(services []string) ([]string, error) {
	var out []string
	for _, s := range services {
		st, err := e.inspect(s)
		if err != nil {
			return nil, err
		}
		if st.ip == "" {
			return nil, fmt.Errorf("%s has no address", s)
		}
		out = append(out, st.ip)
	}
	return out, nil
}

func (e *env) zkLeader() (string, error) {
	for _, z := range zkNodes {
		out, err := e.dc(20*time.Second, "exec", "-T", z, "zk-health", "srvr")
		if err == nil && strings.Contains(out, "Mode: leader") {
			return z, nil
		}
	}
	return "", errors.New("no ZooKeeper leader found")
}

func others(all []string, not ...string) []string {
	var out []string
	for _, s := range all {
		skip := false
		for _, n := range not {
			if s == n {
				skip = true
			}
		}
		if !skip {
			out = append(out, s)
		}
	}
	return out
}

func now() int64 { return time.Now().UnixNano() }

// between returns a seeded random duration in [lo, hi), in whole
// milliseconds.
func (e *env) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(e.rng.Int63n(int64((hi-lo)/time.Millisecond)))*time.Millisecond
}

// inject runs one fault and its recovery action, filling in f.
func (e *env) inject(f *Fault, v view) error {
	p := v.primary.Name
	f.Primary, f.EpochBefore = p, v.primary.Epoch
	hold := func(d time.Duration) {
		if f.Detail != "" {
			f.Detail += "; "
		}
		f.Detail += fmt.Sprintf("held %v", d)
		time.Sleep(d)
	}
	switch f.Kind {
	case FaultKillPrimary:
		f.Target = p
		st, err := e.inspect(p)
		if err != nil {
			return err
		}
		f.Start = now()
		if err := e.docker("kill", st.id); err != nil {
			return err
		}
		hold(e.between(sessionTimeout+2*time.Second, 3*sessionTimeout))
		f.Healed = now()
		return e.docker("start", st.id)
	case FaultPausePrimary:
		f.Target = p
		st, err := e.inspect(p)
		if err != nil {
			return err
		}
		f.Start = now()
		if err := e.docker("pause", st.id); err != nil {
			return err
		}
		// Longer than the session timeout: the others replace it.
		hold(e.between(sessionTimeout+time.Second, 2*sessionTimeout+2*time.Second))
		f.Healed = now()
		return e.docker("unpause", st.id)
	case FaultPartitionZK, FaultPartitionSecondaries, FaultPartitionAll:
		f.Target = p
		var peers []string
		var err error
		switch f.Kind {
		case FaultPartitionZK:
			peers, err = e.ips(zkNodes)
		case FaultPartitionSecondaries:
			peers, err = e.ips(others(zrsNodes, p))
		}
		if err != nil {
			return err
		}
		pid, err := e.netPid(p)
		if err != nil {
			return err
		}
		f.Detail = fmt.Sprintf("iptables DROP in %s's namespace, peers %v (nil: all of eth0)", p, peers)
		f.Start = now()
		if err := e.partition(pid, peers); err != nil {
			_ = e.heal(pid)
			return err
		}
		hold(e.between(sessionTimeout+2*time.Second, 3*sessionTimeout+2*time.Second))
		f.Healed = now()
		return e.heal(pid)
	case FaultKillZKLeader:
		leader, err := e.zkLeader()
		if err != nil {
			return err
		}
		f.Target = leader
		st, err := e.inspect(leader)
		if err != nil {
			return err
		}
		f.Start = now()
		if err := e.docker("kill", st.id); err != nil {
			return err
		}
		hold(e.between(3*time.Second, 8*time.Second))
		f.Healed = now()
		return e.docker("start", st.id)
	case FaultZKQuorum:
		leader, err := e.zkLeader()
		if err != nil {
			leader = zkNodes[e.rng.Intn(len(zkNodes))]
		}
		rest := others(zkNodes, leader)
		two := []string{leader, rest[e.rng.Intn(len(rest))]}
		f.Target = strings.Join(two, "+")
		var ids []string
		for _, z := range two {
			st, err := e.inspect(z)
			if err != nil {
				return err
			}
			ids = append(ids, st.id)
		}
		f.Start = now()
		if err := e.docker(append([]string{"stop", "-t", "2"}, ids...)...); err != nil {
			return err
		}
		hold(e.between(6*time.Second, 10*time.Second))
		f.Healed = now()
		return e.docker(append([]string{"start"}, ids...)...)
	case FaultRestartSecondary:
		secs := others(zrsNodes, p)
		s := secs[e.rng.Intn(len(secs))]
		f.Target = s
		st, err := e.inspect(s)
		if err != nil {
			return err
		}
		f.Start = now()
		// Stop it while the writes go on, start it, and restart it
		// while it catches up.
		if err := e.docker("stop", "-t", "10", st.id); err != nil {
			return err
		}
		down := e.between(5*time.Second, 15*time.Second)
		hold(down)
		if err := e.docker("start", st.id); err != nil {
			return err
		}
		later := e.between(200*time.Millisecond, 1500*time.Millisecond)
		time.Sleep(later)
		f.Detail = fmt.Sprintf("stopped %v, started, restarted %v later while catching up", down, later)
		f.Healed = now()
		return e.docker("restart", "-t", "10", st.id)
	}
	return fmt.Errorf("unknown fault kind %q", f.Kind)
}

// --- end state --------------------------------------------------------------------

// waitQuiet waits until every node reports the same last transaction.
func (e *env) waitQuiet(timeout time.Duration) (view, error) {
	deadline := time.Now().Add(timeout)
	var last view
	for time.Now().Before(deadline) {
		v, err := e.view()
		if err == nil && v.healthy() {
			last = v
			same := true
			for _, n := range v.nodes {
				if n.LastTid != v.nodes[v.primary.Name].LastTid {
					same = false
				}
			}
			if same {
				return v, nil
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return last, fmt.Errorf("nodes did not converge within %v: %v", timeout, last)
}

// readFinals loads every key from every node directly (a static read-only
// client per node).
func (e *env) readFinals(keys int) (Finals, error) {
	finals := Finals{}
	for _, n := range zrsNodes {
		st, err := e.inspect(n)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cl, err := client.Dial(ctx, st.ip+":8100", client.Options{ReadOnly: true, CacheBytes: -1})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		m := map[int]string{}
		for k := 0; k < keys; k++ {
			data, _, err := cl.Load(ctx, KeyOid(k))
			var noObj *storage.NoObjectError
			switch {
			case errors.As(err, &noObj):
				m[k] = ""
			case err != nil:
				cl.Close()
				cancel()
				return nil, fmt.Errorf("%s: load key %d: %w", n, k, err)
			default:
				m[k] = string(data)
			}
		}
		cl.Close()
		cancel()
		finals[n] = m
	}
	return finals, nil
}

// --- the test ---------------------------------------------------------------------

func TestChaos(t *testing.T) {
	if !*flagChaos {
		t.Skip("the chaos suite runs with -chaos (make chaos-short, make chaos)")
	}
	for _, tool := range []string{"docker", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("-chaos was given but %s is missing: %v", tool, err)
		}
	}
	if runtime.GOOS != "linux" {
		t.Fatal("-chaos needs Linux (network namespaces of the containers)")
	}
	_, file, _, _ := runtime.Caller(0)
	root, err := filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	seed := *flagSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	base := *flagResults
	if base == "" {
		base = filepath.Join(root, "chaos-results")
	}
	start := time.Now()
	dir := filepath.Join(base, fmt.Sprintf("%s-seed%d", start.UTC().Format("20060102T150405Z"), seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(base, "latest"))
	_ = os.Symlink(filepath.Base(dir), filepath.Join(base, "latest"))
	e := &env{t: t, root: root, dir: dir, project: *flagProject, rng: rand.New(rand.NewSource(seed))}
	if e.logF, err = os.Create(filepath.Join(dir, "driver.log")); err != nil {
		t.Fatal(err)
	}
	defer e.logF.Close()
	os.WriteFile(filepath.Join(dir, "seed"), []byte(fmt.Sprintln(seed)), 0o644)
	e.logf("chaos run: seed %d, %d rounds, results in %s", seed, *flagRounds, dir)
	e.logf("reproduce: go test ./integration/chaos -run TestChaos -timeout 0 -v -chaos -chaos.seed=%d -chaos.rounds=%d", seed, *flagRounds)

	if _, err := e.run(30*time.Second, nil, "docker", "info"); err != nil {
		t.Fatalf("-chaos was given but docker does not work: %v", err)
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		e.logf("installing iptables on the host (partitions run it in the containers' namespaces)")
		if _, err := e.run(5*time.Minute, []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", "install", "-y", "-qq", "iptables"); err != nil {
			t.Fatalf("iptables is missing and could not be installed: %v", err)
		}
	}
	if _, err := e.run(10*time.Second, nil, "docker", "compose", "version"); err == nil {
		e.compose = []string{"docker", "compose"}
	} else if _, err := exec.LookPath("docker-compose"); err == nil {
		e.compose = []string{"docker-compose"}
	} else {
		t.Fatal("-chaos was given but neither `docker compose` nor docker-compose is installed")
	}
	e.compose = append(e.compose, "-p", e.project, "-f", filepath.Join(root, "docker-compose.yml"), "--profile", "workload")

	e.logf("building images (scripts/build-images.sh)")
	e.must(e.run(30*time.Minute, nil, "bash", "scripts/build-images.sh"))
	e.dc(3*time.Minute, "down", "-v", "--remove-orphans")
	if !*flagKeep {
		t.Cleanup(func() {
			e.logf("docker compose down -v")
			if out, err := e.dc(5*time.Minute, "down", "-v", "--remove-orphans"); err != nil {
				t.Logf("down: %v %s", err, out)
			}
		})
	}
	e.logf("starting the cluster")
	e.must(e.dc(5*time.Minute, append([]string{"up", "-d"}, append(append([]string{}, zkNodes...), zrsNodes...)...)...))
	if err := e.reconnectZK(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		e.zkMu.Lock()
		if e.zk != nil {
			e.zk.Close()
		}
		e.zkMu.Unlock()
	}()
	v, err := e.waitRecovered(recoverTimeout, false)
	if err != nil {
		e.saveLogs()
		t.Fatal(err)
	}
	e.logf("cluster up: %v", v)

	e.logf("starting the workload")
	if _, err := e.run(2*time.Minute, []string{fmt.Sprintf("ZRS_WORKLOAD_SEED=%d", seed)}, e.compose[0],
		append(append([]string{}, e.compose[1:]...), "up", "-d", "--no-deps", "workload")...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)

	rep := &Report{Seed: seed, Rounds: *flagRounds, Start: start}
	kinds := AllFaults
	if *flagFaults != "" {
		kinds = strings.Split(*flagFaults, ",")
	}
	stuck := false
	for i, kind := range Schedule(e.rng, kinds, *flagRounds) {
		v, err := e.waitRecovered(recoverTimeout, true)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("before round %d: %v", i, err))
			stuck = true
			break
		}
		f := Fault{Round: i, Kind: kind}
		e.logf("round %d: %s (%v)", i, kind, v)
		if err := e.inject(&f, v); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("round %d %s: injecting: %v", i, kind, err))
			e.logf("round %d: injecting failed: %v", i, err)
		}
		e.logf("round %d: %s on %s injected; recovery done %.1fs after", i, kind, f.Target, float64(f.Healed-f.Start)/1e9)
		_ = e.reconnectZK()
		after, err := e.waitRecovered(recoverTimeout, true)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("round %d %s: %v", i, kind, err))
			e.logf("round %d: %v", i, err)
			rep.Faults = append(rep.Faults, f)
			stuck = true
			break
		}
		f.Recovered = now()
		f.PrimaryAfter, f.EpochAfter = after.primary.Name, after.primary.Epoch
		e.logf("round %d: recovered %.1fs after the fault: %v", i, float64(f.Recovered-f.Start)/1e9, after)
		rep.Faults = append(rep.Faults, f)
		time.Sleep(3 * time.Second)
	}

	e.logf("stopping the workload")
	if out, err := e.dc(2*time.Minute, "stop", "-t", "30", "workload"); err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("stopping the workload: %v %s", err, out))
	}
	wl, _ := e.containerID("workload")
	if wl != "" {
		if err := e.docker("cp", wl+":/var/lib/zrs/history/.", dir); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("copying the history: %v", err))
		}
	}
	if out, err := e.dc(time.Minute, "logs", "--no-color", "workload"); err == nil {
		os.WriteFile(filepath.Join(dir, "workload.log"), []byte(out), 0o644)
	}
	ops, err := ReadHistoryFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("reading the history: %v", err))
	}
	e.logf("history: %d operations", len(ops))

	// End state: quiet, converged, read from every node.
	var finals Finals
	if !stuck {
		if _, err := e.waitRecovered(recoverTimeout, false); err != nil {
			rep.Problems = append(rep.Problems, err.Error())
		}
		if qv, err := e.waitQuiet(time.Minute); err != nil {
			rep.Problems = append(rep.Problems, err.Error())
		} else {
			e.logf("converged: %v", qv)
		}
		if finals, err = e.readFinals(*flagKeys); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("reading the end state: %v", err))
			finals = nil
		} else if j, err := json.Marshal(finals); err == nil {
			os.WriteFile(filepath.Join(dir, "finals.json"), j, 0o644)
		}
	}
	logs := e.saveLogs()

	// Checks.
	e.logf("checking the history with porcupine")
	res, info, model := Linearizability(ops, finals, 10*time.Minute)
	rep.Linearizable = string(res)
	switch res {
	case porcupine.Illegal:
		rep.Anomalies = append(rep.Anomalies, Anomaly{"linearizability", "porcupine: the writes (and end state) are not linearizable; see linearizability.html"})
	case porcupine.Unknown:
		rep.Problems = append(rep.Problems, "porcupine timed out: linearizability not decided")
	}
	if finals != nil {
		chains, an := CheckFinal(ops, finals, *flagKeys)
		rep.Anomalies = append(rep.Anomalies, an...)
		rep.Anomalies = append(rep.Anomalies, CheckReads(ops, chains)...)
	}
	promos, err := Promotions(strings.NewReader(logs))
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("parsing the logs: %v", err))
	}
	rep.Promotions = promos
	rep.Anomalies = append(rep.Anomalies, CheckEpochs(promos)...)

	// Data files: stop the nodes gracefully, then verify and hash each.
	if !stuck {
		rep.DataFiles, rep.Anomalies = e.checkDataFiles(rep.Anomalies)
	}

	rep.End = time.Now()
	rep.Summarize(ops)
	if len(rep.Anomalies) > 0 || len(rep.Problems) > 0 || res != porcupine.Ok {
		path := filepath.Join(dir, "linearizability.html")
		if err := porcupine.VisualizePath(model, info, path); err != nil {
			e.logf("visualization: %v", err)
		} else {
			e.logf("porcupine's visualization: %s", path)
		}
	}
	if err := rep.Save(dir); err != nil {
		t.Error(err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	e.logf("report (%s):\n%s", dir, text.String())
	if len(rep.Anomalies) > 0 {
		t.Errorf("%d anomalies (seed %d); history, logs and visualization in %s", len(rep.Anomalies), seed, dir)
	}
	if len(rep.Problems) > 0 {
		t.Errorf("the run had problems (seed %d): %s", seed, strings.Join(rep.Problems, "; "))
	}
}

// saveLogs writes every container's log to the results and returns the
// nodes' logs.
func (e *env) saveLogs() string {
	all, _ := e.dc(2*time.Minute, "logs", "--no-color", "--timestamps")
	os.WriteFile(filepath.Join(e.dir, "compose.log"), []byte(all), 0o644)
	nodes, err := e.dc(2*time.Minute, append([]string{"logs", "--no-color"}, zrsNodes...)...)
	if err != nil {
		e.logf("node logs: %v", err)
	}
	return nodes
}

// checkDataFiles stops the nodes and runs zrs verify and sha256sum on
// each node's Data.fs (in its volume, with the zrs image).
func (e *env) checkDataFiles(an []Anomaly) (map[string]string, []Anomaly) {
	files := map[string]string{}
	e.logf("stopping the nodes")
	if out, err := e.dc(3*time.Minute, append([]string{"stop"}, zrsNodes...)...); err != nil {
		an = append(an, Anomaly{"identical", fmt.Sprintf("stopping the nodes: %v %s", err, out)})
		return files, an
	}
	hashes := map[string][]string{}
	for _, n := range zrsNodes {
		vol := e.project + "_" + n + "-data"
		out, err := e.run(5*time.Minute, nil, "docker", "run", "--rm", "--network", "none", "-v", vol+":/data:ro",
			"--entrypoint", "zrs", "zrs/zrs:latest", "verify", "/data/Data.fs")
		verify := "verify ok"
		if err != nil {
			verify = "verify FAILED"
			an = append(an, Anomaly{"identical", fmt.Sprintf("%s: zrs verify: %v", n, err)})
		}
		out, err = e.run(5*time.Minute, nil, "docker", "run", "--rm", "--network", "none", "-v", vol+":/data:ro",
			"--entrypoint", "sh", "zrs/zrs:latest", "-c", "sha256sum /data/Data.fs | cut -d' ' -f1; stat -c %s /data/Data.fs; ls /data")
		if err != nil {
			an = append(an, Anomaly{"identical", fmt.Sprintf("%s: hashing Data.fs: %v", n, err)})
			continue
		}
		f := strings.Fields(out)
		if len(f) < 2 {
			an = append(an, Anomaly{"identical", fmt.Sprintf("%s: hashing Data.fs: %q", n, out)})
			continue
		}
		files[n] = fmt.Sprintf("sha256 %s, %s bytes, %s; files: %s", f[0], f[1], verify, strings.Join(f[2:], " "))
		hashes[f[0]] = append(hashes[f[0]], n)
	}
	if len(hashes) > 1 {
		var parts []string
		for h, ns := range hashes {
			parts = append(parts, fmt.Sprintf("%s: %s", strings.Join(ns, ","), h[:16]))
		}
		sort.Strings(parts)
		an = append(an, Anomaly{"identical", "Data.fs differs between nodes: " + strings.Join(parts, "; ")})
	}
	return files, an
}

// TestRecheck runs the checks of TestChaos again on the files a run left
// in its results directory: go test ./integration/chaos -run TestRecheck
// -chaos.recheck=chaos-results/latest.
func TestRecheck(t *testing.T) {
	if *flagRecheck == "" {
		t.Skip("runs with -chaos.recheck=DIR")
	}
	dir := *flagRecheck
	ops, err := ReadHistoryFile(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var finals Finals
	if b, err := os.ReadFile(filepath.Join(dir, "finals.json")); err == nil {
		if err := json.Unmarshal(b, &finals); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Logf("no end state: %v", err)
	}
	var an []Anomaly
	res, info, model := Linearizability(ops, finals, 10*time.Minute)
	t.Logf("%d operations; porcupine: %s", len(ops), res)
	if res != porcupine.Ok {
		an = append(an, Anomaly{"linearizability", string(res)})
		path := filepath.Join(t.TempDir(), "linearizability.html")
		if os.Getenv("CHAOS_VISUALIZE") != "" {
			path = os.Getenv("CHAOS_VISUALIZE")
		}
		if err := porcupine.VisualizePath(model, info, path); err == nil {
			t.Logf("visualization: %s", path)
		}
	}
	if finals != nil {
		chains, fa := CheckFinal(ops, finals, *flagKeys)
		an = append(an, fa...)
		an = append(an, CheckReads(ops, chains)...)
	}
	if f, err := os.Open(filepath.Join(dir, "compose.log")); err == nil {
		p, err := Promotions(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("promotions: %v", p)
		an = append(an, CheckEpochs(p)...)
	}
	for i, a := range an {
		if i == 20 {
			t.Errorf("... and %d more", len(an)-i)
			break
		}
		t.Errorf("anomaly: %v", a)
	}
}
