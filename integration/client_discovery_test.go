package integration

// The Go client following a cluster through a real ZooKeeper: the
// registry records are written by the tests themselves (registry.Register
// and RunForPrimary), as a node's own ZooKeeper driver would, around
// nodes embedded in the test process.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/internal/testlog"
	"github.com/zrs-go/zrs/node"
	"github.com/zrs-go/zrs/registry"
	"github.com/zrs-go/zrs/storage"
)

// followTimeout is how soon a client must be committing on a new primary
// after the primary znode names it.
const followTimeout = time.Second

// discConfig is the registry configuration of a fresh cluster on zk.
func discConfig(zk *ZKCluster, cluster string) registry.Config {
	return registry.Config{Servers: zk.Servers(), Cluster: cluster, SessionTimeout: 2 * time.Second}
}

// discSession opens a ZooKeeper session, closed when the test ends.
func discSession(t *testing.T, cfg registry.Config) *registry.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := registry.Connect(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// discRegister publishes a node record.
func discRegister(t *testing.T, s *registry.Session, rec registry.NodeRecord) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Register(ctx, rec); err != nil {
		t.Fatal(err)
	}
}

// discElect makes s the primary (epoch+1, primary znode holding rec) and
// returns the new epoch.
func discElect(t *testing.T, s *registry.Session, rec registry.PrimaryRecord) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ep, err := s.ReadEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	term, err := s.RunForPrimary(ctx, ep.Version, ep.Value+1, rec)
	if err != nil {
		t.Fatal(err)
	}
	return term.Epoch
}

// newDiscLog returns a client logger whose output is shown if the test fails.
func newDiscLog(t *testing.T) (*testlog.Buffer, hclog.Logger) {
	l := &testlog.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client log:\n%s", l.String())
		}
	})
	return l, hclog.New(&hclog.LoggerOptions{Output: l, Level: hclog.Debug})
}

// discNode is a node assembled in the test from the node package's parts
// (storage, ZEO service, replication feed and replica), so that the test
// can play the node's ZooKeeper driver: set its epoch, demote and promote
// it.
type discNode struct {
	name     string
	store    *storage.FileStorage
	zeo      *node.ZEOService
	zeoAddr  string
	replAddr string

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	stopReplica context.CancelFunc
	replicaDone chan struct{}
}

// startDiscNode starts a node: a writable primary, or a read-only
// secondary of upstream (a replication address) when it is not "".
func startDiscNode(t *testing.T, name, upstream string) *discNode {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := storage.Open(filepath.Join(dir, "Data.fs"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := node.NewZEOService(node.ZEOServiceConfig{Storage: store, ReadOnly: upstream != ""})
	if err != nil {
		t.Fatal(err)
	}
	zln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &discNode{name: name, store: store, zeo: svc, zeoAddr: zln.Addr().String(), replAddr: rln.Addr().String(), cancel: cancel}
	feed := node.NewFeed(node.FeedConfig{Storage: store, KeepAlive: time.Second})
	n.wg.Add(2)
	go func() { defer n.wg.Done(); svc.Serve(ctx, zln) }()
	go func() { defer n.wg.Done(); feed.Serve(ctx, rln) }()
	if upstream != "" {
		rctx, stop := context.WithCancel(ctx)
		rep := node.NewReplica(node.ReplicaConfig{
			Storage: store, Name: name, Protocol: node.ReplicationGo1, KeepAlive: time.Second,
			Publish: svc.Publish(), MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		}, upstream)
		done := make(chan struct{})
		n.stopReplica, n.replicaDone = stop, done
		go func() { defer close(done); rep.Run(rctx) }()
	}
	t.Cleanup(n.stop)
	return n
}

// promote stops replicating and accepts commits, at epoch.
func (n *discNode) promote(epoch uint64) {
	n.mu.Lock()
	stop, done := n.stopReplica, n.replicaDone
	n.stopReplica = nil
	n.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	n.zeo.SetEpoch(epoch)
	n.zeo.SetReadOnly(false)
}

func (n *discNode) stop() {
	n.mu.Lock()
	stop, done := n.stopReplica, n.replicaDone
	n.stopReplica = nil
	n.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	n.cancel()
	n.wg.Wait()
	n.store.Close()
}

func (n *discNode) record(role registry.Role, epoch uint64) registry.NodeRecord {
	return registry.NodeRecord{Name: n.name, ZEO: n.zeoAddr, Replication: n.replAddr, Role: role, Epoch: epoch}
}

func (n *discNode) primary() registry.PrimaryRecord {
	return registry.PrimaryRecord{Name: n.name, ZEO: n.zeoAddr, Replication: n.replAddr}
}

// commitRetrying commits oid (based on serial) through c, retrying what
// IsRetryable says may be retried, until ctx ends.
func commitRetrying(ctx context.Context, c *client.Client, oid storage.Oid, serial storage.Tid, data string) (storage.Tid, error) {
	for {
		txn := c.Begin(client.TxnMeta{User: "test"})
		txn.Store(oid, serial, []byte(data))
		tid, err := txn.Commit(ctx)
		if err == nil || !client.IsRetryable(err) || ctx.Err() != nil {
			return tid, err
		}
		var unknown *client.OutcomeUnknownError
		if errors.As(err, &unknown) {
			// It may have been committed: our data there proves it.
			if got, s, lerr := c.Load(ctx, oid); lerr == nil && string(got) == data {
				return s, nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClusterClientFollowsPrimary: a read-write client follows the
// primary znode from node a to node b (a promoted secondary) within a
// second and commits there; a commit refused by a as it is demoted is
// retryable; reads continue on b.
func TestClusterClientFollowsPrimary(t *testing.T) {
	zk := ZKStandalone(t)
	cfg := discConfig(zk, "follow")
	ctx := testContext(t, 2*time.Minute)

	a := startDiscNode(t, "a", "")
	b := startDiscNode(t, "b", a.replAddr)
	sessA, sessB := discSession(t, cfg), discSession(t, cfg)
	discRegister(t, sessA, a.record(registry.RolePrimary, 0))
	discRegister(t, sessB, b.record(registry.RoleSecondary, 0))
	epochA := discElect(t, sessA, a.primary())
	a.zeo.SetEpoch(epochA)
	b.zeo.SetEpoch(epochA)

	_, log := newDiscLog(t)
	c := discDial(t, ctx, cfg, client.Options{Logger: log})
	if c.ServerAddr() != a.zeoAddr || c.Epoch() != epochA {
		t.Fatalf("connected to %q at epoch %d, want a (%s) at %d", c.ServerAddr(), c.Epoch(), a.zeoAddr, epochA)
	}
	serials := map[storage.Oid]storage.Tid{}
	var last storage.Tid
	for oid := storage.Oid(1); oid <= 5; oid++ {
		tid, err := commitRetrying(ctx, c, oid, 0, fmt.Sprintf("object %d on a", oid))
		if err != nil {
			t.Fatal(err)
		}
		serials[oid], last = tid, tid
	}
	WaitFor(t, 20*time.Second, "b to replicate a's commits", func() bool { return b.store.LastTransaction() == last },
		func() string { return fmt.Sprintf("b at %s, a at %s", b.store.LastTransaction(), last) })

	// a loses its primacy: it turns read-only first (its driver fences
	// it), and a commit it refuses can be retried.
	a.zeo.SetReadOnly(true)
	txn := c.Begin(client.TxnMeta{})
	txn.Store(1, serials[1], []byte("refused by a"))
	_, err := txn.Commit(ctx)
	var nc *client.NotCommittedError
	if !errors.As(err, &nc) || !errors.Is(err, client.ErrReadOnly) || !client.IsRetryable(err) {
		t.Fatalf("commit on the demoted primary: %v", err)
	}

	// b takes over: a's session ends (its primary znode goes), b wins
	// the next epoch.
	b.promote(epochA + 1)
	sessA.Close()
	start := time.Now()
	epochB := discElect(t, sessB, b.primary())
	if epochB != epochA+1 {
		t.Fatalf("b elected at epoch %d, want %d", epochB, epochA+1)
	}
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	defer fcancel()
	tid, err := commitRetrying(fctx, c, 1, serials[1], "object 1 on b")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("commit after the failover (after %s): %v", took, err)
	}
	t.Logf("committing on the new primary %s after the election began", took.Round(time.Millisecond))
	if took > followTimeout {
		t.Errorf("the client took %s to commit on the new primary, want at most %s", took, followTimeout)
	}
	if c.ServerAddr() != b.zeoAddr || c.Epoch() != epochB {
		t.Fatalf("connected to %q at epoch %d, want b (%s) at %d", c.ServerAddr(), c.Epoch(), b.zeoAddr, epochB)
	}
	if b.store.LastTransaction() != tid || a.store.LastTransaction() != last {
		t.Fatalf("b at %s (want %s), a at %s (want %s)", b.store.LastTransaction(), tid, a.store.LastTransaction(), last)
	}
	// Reads go on at b, through the revalidated cache.
	for oid := storage.Oid(1); oid <= 5; oid++ {
		want := fmt.Sprintf("object %d on a", oid)
		if oid == 1 {
			want = "object 1 on b"
		}
		data, _, err := c.Load(ctx, oid)
		if err != nil || string(data) != want {
			t.Fatalf("load %d on b: %q %v, want %q", oid, data, err, want)
		}
	}
}

// TestClusterClientRefusesLowerEpoch: a server whose epoch is lower than
// one the client has seen (here: named by the primary znode of a newer
// epoch before its own node caught up) is refused, by a connected client
// and at DialCluster, until it reports the current epoch.
func TestClusterClientRefusesLowerEpoch(t *testing.T) {
	zk := ZKStandalone(t)
	cfg := discConfig(zk, "fence")
	ctx := testContext(t, 2*time.Minute)

	x := startDiscNode(t, "x", "")
	y := startDiscNode(t, "y", "")
	sessX, sessY := discSession(t, cfg), discSession(t, cfg)
	epoch1 := discElect(t, sessX, x.primary())
	x.zeo.SetEpoch(epoch1)

	logs, log := newDiscLog(t)
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := client.DialCluster(dctx, cfg, client.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	// y becomes primary; the client follows.
	sessX.Close()
	y.zeo.SetEpoch(epoch1 + 1)
	epoch2 := discElect(t, sessY, y.primary())
	WaitFor(t, 5*time.Second, "the client to follow y", func() bool { return c.ServerAddr() == y.zeoAddr && c.Epoch() == epoch2 })

	// x is elected again, but its ZEO service still says epoch 1.
	sessY.Close()
	sessX2 := discSession(t, cfg)
	epoch3 := discElect(t, sessX2, x.primary())
	WaitFor(t, 5*time.Second, "the client to refuse x", func() bool { return c.Epoch() == epoch3 && c.ServerAddr() == "" },
		func() string { return "connected to " + c.ServerAddr() })
	time.Sleep(300 * time.Millisecond) // a few reconnection attempts
	if got := c.ServerAddr(); got != "" {
		t.Fatalf("the client connected to %s, whose epoch is %d < %d", got, epoch1, epoch3)
	}
	if want := fmt.Sprintf("its epoch %d is lower than epoch %d", epoch1, epoch3); !bytes.Contains([]byte(logs.String()), []byte(want)) {
		t.Fatalf("the client log does not say %q", want)
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	_, err = client.DialCluster(rctx, cfg, client.Options{})
	var stale *client.StaleServerError
	if !errors.As(err, &stale) || stale.Epoch != epoch1 || stale.Seen != epoch3 || stale.Addr != x.zeoAddr {
		t.Fatalf("DialCluster to a server of epoch %d when the primary znode says %d: %v", epoch1, epoch3, err)
	}

	// Once x serves the new epoch, the client takes it.
	x.zeo.SetEpoch(epoch3)
	start := time.Now()
	if _, err := commitRetrying(ctx, c, 1, 0, "on x"); err != nil {
		t.Fatal(err)
	}
	if c.ServerAddr() != x.zeoAddr {
		t.Fatalf("committed through %q, want x (%s)", c.ServerAddr(), x.zeoAddr)
	}
	t.Logf("accepted x %s after it reported epoch %d", time.Since(start).Round(time.Millisecond), epoch3)
}

// TestClusterReadOnlyClientsSpread: read-only clients spread over the
// secondaries (embedded with node.New), move off a secondary that leaves
// the cluster, and fall back to the primary when no secondary is left.
func TestClusterReadOnlyClientsSpread(t *testing.T) {
	zk := ZKStandalone(t)
	cfg := discConfig(zk, "spread")
	ctx := testContext(t, 2*time.Minute)

	p := startEmbedded(t, "p", "")
	s1 := startEmbedded(t, "s1", p.ReplicationAddr().String())
	s2 := startEmbedded(t, "s2", p.ReplicationAddr().String())
	sessP, sess1, sess2 := discSession(t, cfg), discSession(t, cfg), discSession(t, cfg)
	rec := func(n *node.Node, name string, role registry.Role) registry.NodeRecord {
		r := registry.NodeRecord{Name: name, ZEO: n.ZEOAddr().String(), Role: role}
		if a := n.ReplicationAddr(); a != nil {
			r.Replication = a.String()
		}
		return r
	}
	discRegister(t, sessP, rec(p, "p", registry.RolePrimary))
	discRegister(t, sess1, rec(s1, "s1", registry.RoleSecondary))
	discRegister(t, sess2, rec(s2, "s2", registry.RoleSecondary))
	discElect(t, sessP, registry.PrimaryRecord{Name: "p", ZEO: p.ZEOAddr().String(), Replication: p.ReplicationAddr().String()})

	w, err := client.Dial(ctx, p.ZEOAddr().String(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	tid, err := commitRetrying(ctx, w, 1, 0, "hello")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*node.Node{s1, s2} {
		WaitFor(t, 20*time.Second, "the secondaries to replicate", func() bool { return s.Storage().LastTransaction() == tid })
	}

	_, log := newDiscLog(t)
	src, err := client.NewZKSource(ctx, cfg, client.ZKSecondaries, log.Named("source"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	addr1, addr2, addrP := s1.ZEOAddr().String(), s2.ZEOAddr().String(), p.ZEOAddr().String()
	const readers = 24
	var clients []*client.Client
	count := map[string]int{}
	for range readers {
		c, err := client.Dial(ctx, "", client.Options{ReadOnly: true, Source: src, MinBackoff: 20 * time.Millisecond,
			MaxBackoff: 200 * time.Millisecond, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clients = append(clients, c)
		count[c.ServerAddr()]++
		if data, _, err := c.Load(ctx, 1); err != nil || string(data) != "hello" {
			t.Fatalf("load through %s: %q %v", c.ServerAddr(), data, err)
		}
	}
	t.Logf("%d read-only clients: %d on s1, %d on s2, %d on the primary", readers, count[addr1], count[addr2], count[addrP])
	if count[addr1]+count[addr2] != readers || count[addr1] < 3 || count[addr2] < 3 {
		t.Fatalf("read-only clients are not spread over the secondaries: %v (s1 %s, s2 %s, p %s)", count, addr1, addr2, addrP)
	}

	on := func(addr string) func() bool {
		return func() bool {
			for _, c := range clients {
				if c.ServerAddr() != addr {
					return false
				}
			}
			return true
		}
	}
	where := func() string {
		m := map[string]int{}
		for _, c := range clients {
			m[c.ServerAddr()]++
		}
		return fmt.Sprint(m)
	}
	// s1 leaves the cluster (its record goes): its clients move to s2.
	sess1.Close()
	start := time.Now()
	WaitFor(t, 5*time.Second, "every reader to be on s2", on(addr2), where)
	t.Logf("readers left s1 in %s", time.Since(start).Round(time.Millisecond))
	// No secondary left: the primary serves the readers.
	sess2.Close()
	WaitFor(t, 5*time.Second, "every reader to be on the primary", on(addrP), where)
	for _, c := range clients {
		if data, _, err := c.Load(ctx, 1); err != nil || string(data) != "hello" {
			t.Fatalf("load through %s: %q %v", c.ServerAddr(), data, err)
		}
	}
	// A secondary comes back: the readers leave the primary for it.
	sess1b := discSession(t, cfg)
	discRegister(t, sess1b, rec(s1, "s1", registry.RoleSecondary))
	WaitFor(t, 5*time.Second, "every reader to be back on s1", on(addr1), where)
	sess1b.Close()
	WaitFor(t, 5*time.Second, "every reader to be on the primary again", on(addrP), where)
	// DialCluster makes the same kind of client.
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ro, err := client.DialCluster(dctx, cfg, client.Options{ReadOnly: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if ro.ServerAddr() != addrP {
		t.Fatalf("read-only DialCluster connected to %q, want the primary %s", ro.ServerAddr(), addrP)
	}
}

// startEmbedded runs a static-mode node made by node.New in the test
// process: a primary serving replication, or a secondary of upstream.
func startEmbedded(t *testing.T, name, upstream string) *node.Node {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := node.Default(dir)
	cfg.Name = name
	cfg.ZEO.Listen = "127.0.0.1:0"
	cfg.Replication = &node.ReplicationConfig{KeepAliveDelay: "1s", Protocol: node.ReplicationGo1}
	if upstream == "" {
		cfg.Replication.ReplicateTo = "127.0.0.1:0"
	} else {
		cfg.Replication.ReplicateFrom = upstream
	}
	n, err := node.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s: %v", name, err)
		}
	})
	return n
}

// TestClusterClientSurvivesZooKeeperOutage: while ZooKeeper is down the
// client keeps using the last primary it knew, reconnecting to it when
// the connection drops; once ZooKeeper is back it follows the next
// failover.
func TestClusterClientSurvivesZooKeeperOutage(t *testing.T) {
	zk := ZKStandalone(t)
	cfg := discConfig(zk, "outage")
	ctx := testContext(t, 2*time.Minute)

	a := startDiscNode(t, "a", "")
	b := startDiscNode(t, "b", a.replAddr)
	sessA := discSession(t, cfg)
	epochA := discElect(t, sessA, a.primary())
	a.zeo.SetEpoch(epochA)
	b.zeo.SetEpoch(epochA)

	_, log := newDiscLog(t)
	c := discDial(t, ctx, cfg, client.Options{Logger: log})

	zk.Stop(0)
	tid, err := commitRetrying(ctx, c, 1, 0, "while ZooKeeper is down")
	if err != nil {
		t.Fatal(err)
	}
	// The connection drops; the client comes back to the primary it knew.
	a.zeo.DropClients()
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if tid, err = commitRetrying(cctx, c, 1, tid, "reconnected while ZooKeeper is down"); err != nil {
		t.Fatal(err)
	}
	if c.ServerAddr() != a.zeoAddr {
		t.Fatalf("connected to %q while ZooKeeper is down, want a (%s)", c.ServerAddr(), a.zeoAddr)
	}
	WaitFor(t, 20*time.Second, "b to replicate", func() bool { return b.store.LastTransaction() == tid })

	zk.Start(0)
	// a's session may have expired meanwhile, or not: end it once it can
	// tell ZooKeeper (so that its primary znode goes at once).
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := sessA.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	sessA.Close()
	a.zeo.SetReadOnly(true)
	b.promote(epochA + 1)
	sessB := discSession(t, cfg)
	epochB := discElect(t, sessB, b.primary())
	if epochB != epochA+1 {
		t.Fatalf("b elected at epoch %d, want %d", epochB, epochA+1)
	}
	fctx, fcancel := context.WithTimeout(ctx, 15*time.Second)
	defer fcancel()
	start := time.Now()
	if _, err := commitRetrying(fctx, c, 1, tid, "on b after the outage"); err != nil {
		t.Fatal(err)
	}
	t.Logf("following the failover after the outage took %s", time.Since(start).Round(time.Millisecond))
	if c.ServerAddr() != b.zeoAddr || c.Epoch() != epochB {
		t.Fatalf("connected to %q at epoch %d, want b (%s) at %d", c.ServerAddr(), c.Epoch(), b.zeoAddr, epochB)
	}
}

// discDial connects a client to the cluster of cfg, reconnecting quickly;
// it is closed with the test.
func discDial(t *testing.T, ctx context.Context, cfg registry.Config, opts client.Options) *client.Client {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	opts.MinBackoff, opts.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	c, err := client.DialCluster(dctx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
