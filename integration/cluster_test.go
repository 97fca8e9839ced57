package integration

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/registry"
	"github.com/zrs-go/zrs/storage"
)

// electionTimeout bounds an election in these tests: session timeout 2 s,
// settle delay 200 ms, and slack for a loaded CI machine.
const electionTimeout = 30 * time.Second

// TestClusterElectsOnePrimary starts three nodes against one ZooKeeper:
// all register, exactly one becomes primary, the others follow it, the
// zc.zkzeo provider entries name the primary (and the secondaries under
// readonly/), and `zrs status` shows all of it.
func TestClusterElectsOnePrimary(t *testing.T) {
	zk := ZKStandalone(t)
	cl := StartCluster(t, zk, 3, nil)
	p, epoch := cl.WaitPrimary(electionTimeout)
	ctx := testContext(t, time.Minute)

	WaitFor(t, 20*time.Second, "every node to publish its role", func() bool {
		recs, err := cl.Records(ctx)
		if err != nil || len(recs) != 3 {
			return false
		}
		primaries := 0
		for _, r := range recs {
			switch {
			case r.Role == registry.RolePrimary:
				primaries++
			case r.Role != registry.RoleSecondary || r.Upstream != p.Name() || r.Epoch != epoch:
				return false
			}
		}
		return primaries == 1
	}, cl.Status)

	checkProviders(t, cl, p)
	s := cl.Session()
	paths := s.Paths()
	recs, _ := cl.Records(ctx)
	WaitFor(t, 10*time.Second, "secondaries under readonly/providers", func() bool {
		ro, _, err := s.Conn().Children(paths.ReadOnlyProviders)
		return err == nil && len(ro) == 2 && !slices.Contains(ro, recs[p.Name()].ZEO)
	})

	// The primary takes commits; secondaries refuse them and replicate.
	c := dialWriter(t, ctx, p)
	var tids []storage.Tid
	for i := range 5 {
		tid, _, err := commitNew(ctx, c, writerOid(i), writerData(i))
		if err != nil {
			t.Fatal(err)
		}
		tids = append(tids, tid)
	}
	for _, n := range cl.Nodes {
		if n == p {
			continue
		}
		n.WaitTid(tids[len(tids)-1], catchUpTimeout)
		checkWriterObjects(t, ctx, n, tids)
	}

	status := cl.Status()
	for _, n := range cl.Nodes {
		if !strings.Contains(status, n.Name()) {
			t.Errorf("zrs status lacks node %s:\n%s", n.Name(), status)
		}
	}
	if got := strings.Count(status, "primary*"); got != 1 {
		t.Errorf("zrs status shows %d marked primaries, want 1:\n%s", got, status)
	}
	t.Logf("zrs status:\n%s", status)
}

// TestClusterKillPrimaryRejoins kills the primary with SIGKILL: another
// node is elected under a higher epoch and takes commits, the survivors
// follow it, and the old primary, restarted, rejoins as a secondary and
// ends byte-identical to the new primary.
func TestClusterKillPrimaryRejoins(t *testing.T) {
	zk := ZKStandalone(t)
	cl := StartCluster(t, zk, 3, nil)
	old, epoch := cl.WaitPrimary(electionTimeout)
	ctx := testContext(t, 3*time.Minute)

	c := dialWriter(t, ctx, old)
	var tids []storage.Tid
	for i := range 20 {
		tid, _, err := commitNew(ctx, c, writerOid(i), writerData(i))
		if err != nil {
			t.Fatal(err)
		}
		tids = append(tids, tid)
	}
	c.Close()
	for _, n := range cl.Nodes {
		n.WaitTid(tids[len(tids)-1], catchUpTimeout)
	}

	killed := time.Now()
	old.Kill()
	p, newEpoch := cl.WaitPrimary(electionTimeout, old)
	t.Logf("new primary %s (epoch %d) after %v", p.Name(), newEpoch, time.Since(killed).Round(time.Millisecond))
	if newEpoch <= epoch {
		t.Fatalf("new primary's epoch %d is not above the old %d", newEpoch, epoch)
	}
	checkProviders(t, cl, p)
	c = dialWriter(t, ctx, p)
	for i := 20; i < 30; i++ {
		tid, _, err := commitNew(ctx, c, writerOid(i), writerData(i))
		if err != nil {
			t.Fatal(err)
		}
		tids = append(tids, tid)
	}
	c.Close()

	old.Start()
	cl.WaitSecondary(ctx, old, newEpoch)
	for _, n := range cl.Nodes {
		n.WaitTid(tids[len(tids)-1], catchUpTimeout)
		checkWriterObjects(t, ctx, n, tids)
	}
	cl.StopAndCompare(p)
}

// TestClusterDivergedPrimaryRewinds gives an asynchronous primary
// commits that no secondary has (its secondaries are stopped), kills it,
// lets the secondaries elect a new primary that commits other
// transactions, and restarts the old primary: it must find itself
// diverged, move its extra transactions to Data.fs.diverged-<tid> of the
// last common transaction, catch up, and end byte-identical.
func TestClusterDivergedPrimaryRewinds(t *testing.T) {
	zk := ZKStandalone(t)
	cl := StartCluster(t, zk, 3, nil)
	old, _ := cl.WaitPrimary(electionTimeout)
	ctx := testContext(t, 3*time.Minute)

	commit := func(n *Node, from, to int) []storage.Tid {
		t.Helper()
		c := dialWriter(t, ctx, n)
		defer c.Close()
		var tids []storage.Tid
		for i := from; i < to; i++ {
			tid, _, err := commitNew(ctx, c, writerOid(i), writerData(i))
			if err != nil {
				t.Fatal(err)
			}
			tids = append(tids, tid)
		}
		return tids
	}
	common := commit(old, 0, 10)
	var secondaries []*Node
	for _, n := range cl.Nodes {
		n.WaitTid(common[len(common)-1], catchUpTimeout)
		if n != old {
			secondaries = append(secondaries, n)
		}
	}
	for _, n := range secondaries {
		n.Stop()
	}
	extra := commit(old, 10, 15) // asynchronous: nobody else has these
	old.Kill()

	for _, n := range secondaries {
		n.Start()
	}
	p, epoch := cl.WaitPrimary(electionTimeout, old)
	later := commit(p, 20, 25)

	old.Start()
	cl.WaitSecondary(ctx, old, epoch)
	for _, n := range cl.Nodes {
		n.WaitTid(later[len(later)-1], catchUpTimeout)
	}
	side := fmt.Sprintf("%s.diverged-%s", old.DataPath(), common[len(common)-1])
	if got, err := FileLastTid(side); err != nil {
		t.Fatalf("side file of the rewind: %v", err)
	} else if got != extra[len(extra)-1] {
		t.Errorf("side file %s ends at %s, want the last diverged commit %s", side, got, extra[len(extra)-1])
	}
	if lines := old.LogLines("rewound data that the upstream does not have"); len(lines) != 1 {
		t.Errorf("the old primary logged %d rewinds, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	c := dialReader(t, ctx, old, client.Options{CacheBytes: -1})
	for i := 10; i < 15; i++ {
		if data, _, err := c.Load(ctx, writerOid(i)); err == nil {
			t.Errorf("diverged object %d is still on the old primary: %q", i, data)
		}
	}
	c.Close()
	checkWriterObjects(t, ctx, old, common)
	cl.StopAndCompare(p)
	Verify(t, side)
}

// TestClusterFrozenPrimaryAcceptsNoCommit freezes the primary (SIGSTOP)
// for longer than the session timeout while a client of it has a commit
// queued, then resumes it once another node is primary: the old primary
// must refuse that commit and every later one, then rejoin as a
// secondary of the new primary.
func TestClusterFrozenPrimaryAcceptsNoCommit(t *testing.T) {
	zk := ZKStandalone(t)
	cl := StartCluster(t, zk, 3, nil)
	old, _ := cl.WaitPrimary(electionTimeout)
	ctx := testContext(t, 3*time.Minute)

	c := dialWriter(t, ctx, old)
	if _, _, err := commitNew(ctx, c, writerOid(0), writerData(0)); err != nil {
		t.Fatal(err)
	}

	old.Freeze()
	frozen := true
	defer func() {
		if frozen {
			old.Thaw()
		}
	}()
	// A commit sent now waits in the frozen process's socket.
	queued := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		txn := c.Begin(client.TxnMeta{User: "stale"})
		txn.Store(writerOid(1), 0, writerData(1))
		_, err := txn.Commit(cctx)
		queued <- err
	}()
	p, newEpoch := cl.WaitPrimary(electionTimeout, old)
	t.Logf("new primary %s at epoch %d while %s is frozen", p.Name(), newEpoch, old.Name())
	old.Thaw()
	frozen = false

	if err := <-queued; err == nil {
		t.Fatalf("the frozen primary accepted the commit queued while it was frozen, after %s was elected", p.Name())
	} else {
		t.Logf("queued commit refused: %v", err)
	}
	// Every commit attempted on the old primary afterwards fails too.
	deadline := time.Now().Add(3 * time.Second)
	for i := 2; time.Now().Before(deadline); i++ {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		txn := c.Begin(client.TxnMeta{User: "stale"})
		txn.Store(writerOid(i), 0, writerData(i))
		_, err := txn.Commit(cctx)
		cancel()
		if err == nil {
			t.Fatalf("the old primary accepted a commit after %s was elected", p.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}

	cl.WaitSecondary(ctx, old, newEpoch)
	w := dialWriter(t, ctx, p)
	tid, _, err := commitNew(ctx, w, writerOid(1000), writerData(1000))
	if err != nil {
		t.Fatal(err)
	}
	old.WaitTid(tid, catchUpTimeout)
	if n := len(old.LogLines("fenced")) + len(old.LogLines("demoted")); n == 0 {
		t.Errorf("the old primary logged neither a fence nor a demotion")
	}
}

// tryCommit attempts one commit of a new object through a fresh
// connection to n and reports whether it was accepted.
func tryCommit(ctx context.Context, n *Node, oid storage.Oid) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := client.Dial(cctx, n.ZEOAddr, client.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	defer c.Close()
	txn := c.Begin(client.TxnMeta{User: "probe"})
	txn.Store(oid, 0, []byte("probe"))
	_, err = txn.Commit(cctx)
	return err
}

// TestClusterQuorumLoss stops two of three ZooKeeper servers: the primary
// fails closed and no node accepts a commit, while secondaries keep
// serving reads; when quorum returns, exactly one primary takes commits
// again.
func TestClusterQuorumLoss(t *testing.T) {
	zk := ZKEnsemble(t, 3)
	cl := StartCluster(t, zk, 3, nil)
	p, _ := cl.WaitPrimary(electionTimeout)
	ctx := testContext(t, 3*time.Minute)
	if err := tryCommit(ctx, p, writerOid(0)); err != nil {
		t.Fatal(err)
	}
	var secondary *Node
	for _, n := range cl.Nodes {
		if n != p {
			secondary = n
		}
	}
	reader := dialReader(t, ctx, secondary, client.Options{CacheBytes: -1})

	leader := zk.Leader()
	stopped := []int{leader, (leader + 1) % 3}
	for _, i := range stopped {
		zk.Stop(i)
	}
	p.WaitLog(logTimeout, "fenced")
	deadline := time.Now().Add(2 * time.Duration(3) * time.Second)
	for i := 1; time.Now().Before(deadline); i++ {
		for _, n := range cl.Nodes {
			if err := tryCommit(ctx, n, writerOid(i*10+int(n.Name()[3]-'0'))); err == nil {
				t.Fatalf("%s accepted a commit without a ZooKeeper quorum", n.Name())
			}
		}
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if _, _, err := reader.Load(lctx, writerOid(0)); err != nil {
			t.Errorf("secondary %s stopped serving reads without a ZooKeeper quorum: %v", secondary.Name(), err)
		}
		cancel()
	}

	for _, i := range stopped {
		zk.Start(i)
	}
	np, epoch := cl.WaitPrimary(electionTimeout)
	t.Logf("after quorum returned: primary %s at epoch %d", np.Name(), epoch)
	WaitFor(t, electionTimeout, "a commit to be accepted again", func() bool {
		np, _, err := cl.Primary(ctx)
		return err == nil && np != nil && tryCommit(ctx, np, writerOid(1<<20)) == nil
	}, cl.Status)
	WaitFor(t, electionTimeout, "exactly one node to publish the primary role", func() bool {
		recs, err := cl.Records(ctx)
		primaries := 0
		for _, r := range recs {
			if r.Role == registry.RolePrimary {
				primaries++
			}
		}
		return err == nil && primaries == 1
	}, cl.Status)
	np, _ = cl.WaitPrimary(electionTimeout)
	checkProviders(t, cl, np)
}

// TestClusterWaitsForZooKeeper starts nodes while ZooKeeper is down: they
// serve read-only clients, log that they are waiting, and form a cluster
// once ZooKeeper starts.
func TestClusterWaitsForZooKeeper(t *testing.T) {
	zk := ZKStandalone(t)
	zk.Stop(0)
	cl := StartCluster(t, zk, 2, nil)
	for _, n := range cl.Nodes {
		n.WaitLog(logTimeout, "ZooKeeper unavailable; waiting for a session")
	}
	ctx := testContext(t, 2*time.Minute)
	if err := tryCommit(ctx, cl.Nodes[0], writerOid(0)); err == nil {
		t.Fatal("a node accepted a commit before any election")
	}
	zk.Start(0)
	p, _ := cl.WaitPrimary(electionTimeout)
	if err := tryCommit(ctx, p, writerOid(1)); err != nil {
		t.Fatalf("commit on the elected primary %s: %v", p.Name(), err)
	}
}

// TestClusterCascade configures zrs3 to replicate from zrs2: it does so
// while zrs2 is an alive secondary, falls back to the primary when zrs2
// dies, and returns to zrs2 when it is back.
func TestClusterCascade(t *testing.T) {
	zk := ZKStandalone(t)
	cl := StartCluster(t, zk, 3, func(i int, c *Config) {
		if i == 0 {
			c.Priority = 100 // equally fresh empty nodes: zrs1 wins
		}
		if i == 2 {
			c.Upstream = "zrs2"
		}
	})
	p, _ := cl.WaitPrimary(electionTimeout)
	if p.Name() != "zrs1" {
		t.Fatalf("primary is %s, want the highest-priority zrs1", p.Name())
	}
	ctx := testContext(t, 2*time.Minute)
	upstreamOf := func(name string) string {
		recs, err := cl.Records(ctx)
		if err != nil {
			return ""
		}
		return recs[name].Upstream
	}
	WaitFor(t, electionTimeout, "zrs3 to replicate from zrs2", func() bool { return upstreamOf("zrs3") == "zrs2" }, cl.Status)
	w := dialWriter(t, ctx, p)
	tid, _, err := commitNew(ctx, w, writerOid(0), writerData(0))
	if err != nil {
		t.Fatal(err)
	}
	cl.Node("zrs3").WaitTid(tid, catchUpTimeout)

	cl.Node("zrs2").Kill()
	WaitFor(t, electionTimeout, "zrs3 to fall back to the primary", func() bool { return upstreamOf("zrs3") == "zrs1" }, cl.Status)
	if tid, _, err = commitNew(ctx, w, writerOid(1), writerData(1)); err != nil {
		t.Fatal(err)
	}
	cl.Node("zrs3").WaitTid(tid, catchUpTimeout)

	cl.Node("zrs2").Start()
	WaitFor(t, electionTimeout, "zrs3 to return to zrs2", func() bool { return upstreamOf("zrs3") == "zrs2" }, cl.Status)
	if tid, _, err = commitNew(ctx, w, writerOid(2), writerData(2)); err != nil {
		t.Fatal(err)
	}
	cl.Node("zrs3").WaitTid(tid, catchUpTimeout)
}

// dialCluster connects a read-write Go client that follows the cluster's
// primary through ZooKeeper.
func dialCluster(t testing.TB, ctx context.Context, cl *Cluster) *client.Client {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.DialCluster(dctx, registry.Config{Servers: cl.ZK.Servers(), Root: cl.Root, Cluster: "main"},
		client.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("dial the cluster: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClusterSyncFailoverUnderLoad kills the primary with SIGKILL under a
// write load with synchronous = 1: a new primary takes commits, the client
// (following ZooKeeper) continues without help, every commit acknowledged
// before the kill is on the new primary, and the killed node, restarted,
// rejoins and ends byte-identical to the new primary.
func TestClusterSyncFailoverUnderLoad(t *testing.T) {
	zk := ZKStandalone(t)
	cl := StartCluster(t, zk, 3, func(_ int, c *Config) { c.Synchronous = 1 })
	old, epoch := cl.WaitPrimary(electionTimeout)
	ctx := testContext(t, 4*time.Minute)

	w := startWriter(ctx, dialCluster(t, ctx, cl), 0)
	w.waitCommitted(t, 50)
	cl.WaitSyncMember(ctx, old, epoch)
	killedAt := w.committed.Load()
	old.Kill()
	p, newEpoch := cl.WaitPrimary(electionTimeout, old)
	if newEpoch <= epoch {
		t.Fatalf("new primary's epoch %d is not above %d", newEpoch, epoch)
	}
	w.waitCommitted(t, killedAt+50)
	tids := w.finish(t)
	t.Logf("%d commits, %d retried attempts; new primary %s at epoch %d", len(tids), w.retries.Load(), p.Name(), newEpoch)
	checkWriterObjects(t, ctx, p, tids)

	old.Start()
	cl.WaitSecondary(ctx, old, newEpoch)
	last := tids[len(tids)-1]
	for _, n := range cl.Nodes {
		n.WaitTid(last, catchUpTimeout)
	}
	cl.StopAndCompare(p)
}

// checkProviders checks what a zc.zkzeo client looks up, the children of
// providers/: exactly the primary's ZEO address, once the primary has
// published it (the old primary's entry goes with its session).
func checkProviders(t *testing.T, cl *Cluster, p *Node) {
	t.Helper()
	s := cl.Session()
	var providers []string
	WaitFor(t, electionTimeout, "providers/ to name only the primary", func() bool {
		var err error
		providers, _, err = s.Conn().Children(s.Paths().Providers)
		return err == nil && slices.Equal(providers, []string{p.ZEOAddr})
	}, func() string { return fmt.Sprintf("providers/ = %v, primary %s at %s", providers, p.Name(), p.ZEOAddr) })
}

// zrsCluster runs a zrs command against the cluster.
func (cl *Cluster) zrs(args ...string) (string, error) {
	args = append([]string{args[0], "--zookeeper", strings.Join(cl.ZK.Servers(), ","), "--root", cl.Root}, args[1:]...)
	out, err := exec.Command(Binary(cl.t), args...).CombinedOutput()
	return string(out), err
}

// TestClusterSwitchover hands the primary role over with `zrs switchover`
// under a write load with synchronous = 1: no acknowledged commit is
// lost, the old primary follows the new one, and the write pause the
// client saw is reported.
func TestClusterSwitchover(t *testing.T) {
	zk := ZKStandalone(t)
	cl := StartCluster(t, zk, 3, func(_ int, c *Config) { c.Synchronous = 1 })
	old, epoch := cl.WaitPrimary(electionTimeout)
	ctx := testContext(t, 3*time.Minute)
	target := cl.Nodes[(slices.Index(cl.Nodes, old)+1)%3]

	if out, err := cl.zrs("switchover", "--to", old.Name()); err == nil || !strings.Contains(out, "is the primary already") {
		t.Fatalf("switchover to the primary itself: %v\n%s", err, out)
	}

	c := dialCluster(t, ctx, cl)
	acks := &ackLog{}
	w := startWriter(ctx, c, 0)
	go func() {
		seen := int64(0)
		for {
			select {
			case <-w.done:
				return
			case <-time.After(time.Millisecond):
			}
			if n := w.committed.Load(); n > seen {
				seen = n
				acks.add(time.Now(), c.ServerAddr())
			}
		}
	}()
	w.waitCommitted(t, 100)
	requested := time.Now()
	out, err := cl.zrs("switchover", "--to", target.Name())
	if err != nil {
		t.Fatalf("zrs switchover: %v\n%s", err, out)
	}
	t.Logf("zrs switchover:\n%s", out)
	p, newEpoch := cl.WaitPrimary(electionTimeout, old)
	if p != target || newEpoch != epoch+1 {
		t.Fatalf("primary %s at epoch %d, want %s at %d", p.Name(), newEpoch, target.Name(), epoch+1)
	}
	checkProviders(t, cl, p)
	n := w.committed.Load()
	w.waitCommitted(t, n+100)
	tids := w.finish(t)
	_, gap, ok := acks.after(requested, old.ZEOAddr)
	if !ok {
		t.Fatal("no commit acknowledged by the new primary")
	}
	t.Logf("write pause seen by the client during the switchover: %v (%d commits, %d retried attempts)",
		gap.Round(time.Millisecond), len(tids), w.retries.Load())
	checkWriterObjects(t, ctx, p, tids)
	WaitFor(t, electionTimeout, "the old primary to follow the new one", func() bool {
		recs, err := cl.Records(ctx)
		r := recs[old.Name()]
		return err == nil && r.Role == registry.RoleSecondary && r.Upstream == target.Name()
	}, cl.Status)
	if ctl, err := cl.Session().ReadControl(ctx); err != nil || ctl.Switchover != nil {
		t.Errorf("switchover request left behind: %+v %v", ctl.Switchover, err)
	}
}

// TestClusterPauseBlocksFailover pauses the cluster, kills the primary:
// nobody takes over while paused; `zrs resume` lets the election happen.
func TestClusterPauseBlocksFailover(t *testing.T) {
	zk := ZKStandalone(t)
	cl := StartCluster(t, zk, 3, nil)
	old, _ := cl.WaitPrimary(electionTimeout)
	ctx := testContext(t, 2*time.Minute)
	if out, err := cl.zrs("pause"); err != nil {
		t.Fatalf("zrs pause: %v\n%s", err, out)
	}
	if status := cl.Status(); !strings.Contains(status, "PAUSED") {
		t.Fatalf("zrs status does not show the pause:\n%s", status)
	}
	old.Kill()
	// Several session timeouts and settle delays: an unpaused cluster
	// would have elected a new primary long before.
	time.Sleep(8 * time.Second)
	if p, _, err := cl.Primary(ctx); err != nil || p != nil {
		t.Fatalf("primary %v (err %v) while paused", p, err)
	}
	if out, err := cl.zrs("resume"); err != nil {
		t.Fatalf("zrs resume: %v\n%s", err, out)
	}
	p, _ := cl.WaitPrimary(electionTimeout, old)
	if err := tryCommit(ctx, p, writerOid(1)); err != nil {
		t.Fatalf("commit on %s after resume: %v", p.Name(), err)
	}
}

// TestClusterGracefulStopHandsOver stops the primary with SIGTERM under a
// write load, in asynchronous mode: it waits for its secondaries and
// resigns, a successor is elected without waiting for a session to
// expire, and no acknowledged commit is lost.
func TestClusterGracefulStopHandsOver(t *testing.T) {
	zk := ZKStandalone(t)
	cl := StartCluster(t, zk, 3, func(_ int, c *Config) { c.SessionTimeout = "10s" })
	old, _ := cl.WaitPrimary(electionTimeout)
	ctx := testContext(t, 2*time.Minute)
	w := startWriter(ctx, dialCluster(t, ctx, cl), 0)
	w.waitCommitted(t, 50)
	stopped := time.Now()
	old.Stop()
	p, _ := cl.WaitPrimary(electionTimeout, old)
	// Well under the 10 s session timeout: the primary resigned.
	t.Logf("successor %s elected %v after SIGTERM", p.Name(), time.Since(stopped).Round(time.Millisecond))
	w.waitCommitted(t, w.committed.Load()+50)
	tids := w.finish(t)
	checkWriterObjects(t, ctx, p, tids)
	if lines := old.LogLines("resigned as primary"); len(lines) == 0 {
		t.Errorf("the stopped primary did not resign")
	}
}
