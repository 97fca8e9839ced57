package registry_test

// These tests run against real ZooKeeper servers started by the
// integration harness (java and Debian's zookeeper package: see
// scripts/install-deps.sh).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/integration"
	"github.com/zrs-go/zrs/internal/testlog"
	"github.com/zrs-go/zrs/registry"
	"github.com/zrs-go/zrs/storage"
)

const (
	testSessionTimeout = 2 * time.Second
	waitTimeout        = 20 * time.Second
)

func testLogger(t *testing.T, name string) (hclog.Logger, *testlog.Buffer) {
	buf := &testlog.Buffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("ZRS_INTEGRATION_LOGS") != "" {
			t.Logf("=== log of %s:\n%s=== end of log of %s", name, buf.String(), name)
		}
	})
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: buf, Level: hclog.Debug}), buf
}

func testConfig(zkc *integration.ZKCluster) registry.Config {
	return registry.Config{Servers: zkc.Servers(), Cluster: "test", SessionTimeout: testSessionTimeout}
}

// connect opens a Session closed when the test ends.
func connect(t *testing.T, cfg registry.Config, name string) (*registry.Session, *testlog.Buffer) {
	t.Helper()
	log, buf := testLogger(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := registry.Connect(ctx, cfg, log)
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, buf.String())
	}
	t.Cleanup(s.Close)
	return s, buf
}

// rawConn is a plain go-zookeeper client that looks at what the Sessions
// wrote.
func rawConn(t *testing.T, servers []string) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect(servers, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	waitFor(t, "raw client session", func() bool { return conn.State() == zk.StateHasSession })
	return conn
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// latest keeps the last value a watch delivered.
type latest[T any] struct {
	mu sync.Mutex
	v  T
	n  int
}

func (l *latest[T]) set(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.v, l.n = v, l.n+1
}

func (l *latest[T]) get() (T, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.v, l.n
}

func (l *latest[T]) waitFor(t *testing.T, what string, cond func(T) bool) T {
	t.Helper()
	var v T
	waitFor(t, what, func() bool {
		var n int
		v, n = l.get()
		return n > 0 && cond(v)
	})
	return v
}

func findNode(nodes []registry.NodeRecord, name string) (registry.NodeRecord, bool) {
	for _, n := range nodes {
		if n.Name == name {
			return n, true
		}
	}
	return registry.NodeRecord{}, false
}

func get(t *testing.T, conn *zk.Conn, path string) ([]byte, *zk.Stat) {
	t.Helper()
	data, stat, err := conn.Get(path)
	if err != nil {
		t.Fatalf("get %s: %v", path, err)
	}
	return data, stat
}

func exists(t *testing.T, conn *zk.Conn, path string) bool {
	t.Helper()
	ok, _, err := conn.Exists(path)
	if err != nil {
		t.Fatalf("exists %s: %v", path, err)
	}
	return ok
}

func sampleRecord(name string) registry.NodeRecord {
	return registry.NodeRecord{
		Name: name, ZEO: "127.0.0.1:8100", Replication: "127.0.0.1:5000", Role: registry.RoleCandidate,
		LastTid: storage.Tid(0x03c5f1a2b3c4d5e6), Priority: 1, Version: "test",
	}
}

// TestRegisterVisibleToOtherSession: a node record, its updates (rate
// limited while only the tid moves, at once for a role change) and its
// provider entry, as another session sees them.
func TestRegisterVisibleToOtherSession(t *testing.T) {
	defer registry.SetUpdateEvery(2 * time.Second)()
	zkc := integration.ZKStandalone(t)
	cfg := testConfig(zkc)
	ctx := testCtx(t)
	a, _ := connect(t, cfg, "a")
	b, _ := connect(t, cfg, "b")
	raw := rawConn(t, zkc.Servers())
	paths := a.Paths()

	var seen latest[[]registry.NodeRecord]
	b.WatchNodes(ctx, seen.set)
	seen.waitFor(t, "first (empty) snapshot", func(n []registry.NodeRecord) bool { return len(n) == 0 })

	rec := sampleRecord("n1")
	if err := a.Register(ctx, rec); err != nil {
		t.Fatal(err)
	}
	rec.PID = os.Getpid()
	seen.waitFor(t, "n1 in b's watch", func(n []registry.NodeRecord) bool {
		got, ok := findNode(n, "n1")
		return ok && got == rec
	})
	data, stat := get(t, raw, paths.Node("n1"))
	if stat.EphemeralOwner != a.Status().SessionID {
		t.Fatalf("owner %x, want a's session %x", stat.EphemeralOwner, a.Status().SessionID)
	}
	if !strings.Contains(string(data), `"last_tid":"03c5f1a2b3c4d5e6"`) || !strings.Contains(string(data), `"role":"candidate"`) {
		t.Fatalf("data %s", data)
	}

	// Only the tid moves: with the limit stretched to 2 s, a burst of
	// updates is not written yet...
	v0 := stat.Version
	for range 20 {
		rec.LastTid++
		if err := a.Update(rec); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if _, stat := get(t, raw, paths.Node("n1")); stat.Version != v0 {
		t.Fatalf("tid-only updates written within the rate limit: version %d -> %d", v0, stat.Version)
	}
	// ... but a role change is written at once, with the latest tid.
	start := time.Now()
	rec.Role = registry.RoleSecondary
	rec.Upstream = "n0"
	if err := a.Update(rec); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "role change in b's watch", func(n []registry.NodeRecord) bool {
		got, _ := findNode(n, "n1")
		return got == rec
	})
	if d := time.Since(start); d > time.Second {
		t.Fatalf("role change took %s to show (rate limit 2 s)", d)
	}
	if _, stat := get(t, raw, paths.Node("n1")); stat.Version != v0+1 {
		t.Fatalf("version %d after one immediate write from %d", stat.Version, v0)
	}
	// A tid-only update after that waits for the limit, then is written.
	rec.LastTid += 100
	if err := a.Update(rec); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, stat := get(t, raw, paths.Node("n1")); stat.Version != v0+1 {
		t.Fatalf("tid-only update written within the rate limit")
	}
	seen.waitFor(t, "deferred tid update", func(n []registry.NodeRecord) bool {
		got, _ := findNode(n, "n1")
		return got.LastTid == rec.LastTid
	})
	if err := a.Update(registry.NodeRecord{Name: "other"}); err == nil {
		t.Fatal("Update renamed the node")
	}

	// While the tid moves all the time, Flush still returns promptly,
	// and afterwards the rate limit holds again.
	hammer, stopHammer := context.WithCancel(ctx)
	hammered := make(chan registry.NodeRecord)
	go func() {
		r := rec
		for hammer.Err() == nil {
			r.LastTid++
			if err := a.Update(r); err != nil {
				t.Error(err)
			}
			time.Sleep(time.Millisecond)
		}
		hammered <- r
	}()
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Flush under constant updates took %s", d)
	}
	_, stat = get(t, raw, paths.Node("n1"))
	time.Sleep(500 * time.Millisecond)
	if _, stat2 := get(t, raw, paths.Node("n1")); stat2.Version > stat.Version+1 {
		t.Fatalf("rate limit not restored after Flush: %d writes in 500 ms", stat2.Version-stat.Version)
	}
	stopHammer()
	rec = <-hammered
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "the last hammered tid", func(n []registry.NodeRecord) bool {
		got, _ := findNode(n, "n1")
		return got.LastTid == rec.LastTid
	})

	// Provider entries in the zc.zkzeo layout, moving with the role.
	zeo := "127.0.0.1:8100"
	if err := a.Advertise(zeo, false); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	data, stat = get(t, raw, paths.Provider(zeo, false))
	var pr map[string]any
	if err := json.Unmarshal(data, &pr); err != nil || len(pr) != 1 || pr["pid"] != float64(os.Getpid()) {
		t.Fatalf("provider data %s (%v)", data, err)
	}
	if stat.EphemeralOwner != a.Status().SessionID {
		t.Fatal("provider entry not ephemeral of a's session")
	}
	if err := a.Advertise(zeo, true); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(t, raw, paths.Provider(zeo, false)) || !exists(t, raw, paths.Provider(zeo, true)) {
		t.Fatal("provider entry did not move to readonly/providers")
	}
	children, _, err := raw.Children(paths.ReadOnlyProviders)
	if err != nil || len(children) != 1 || children[0] != zeo {
		t.Fatalf("readonly providers %v, %v", children, err)
	}
	for _, bad := range []string{"0.0.0.0:8100", "8100", "h:x", "a/b:1"} {
		if err := a.Advertise(bad, true); err == nil {
			t.Errorf("Advertise(%q) accepted", bad)
		}
	}
	a.Unadvertise()
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(t, raw, paths.Provider(zeo, true)) {
		t.Fatal("Unadvertise left the entry")
	}

	// Closing the session removes the record at once.
	a.Close()
	seen.waitFor(t, "n1 gone from b's watch", func(n []registry.NodeRecord) bool { return len(n) == 0 })
	if st := a.Status(); st.State != registry.StateClosed {
		t.Fatalf("status after Close: %+v", st)
	}
}

// TestRecreateAfterExpiry: cut off from ZooKeeper for longer than its
// session timeout, a node loses its session and its ephemerals; once back
// it gets a new session and re-creates them, with the data of the latest
// Update.
func TestRecreateAfterExpiry(t *testing.T) {
	zkc := integration.ZKStandalone(t)
	cfg := testConfig(zkc)
	fault := integration.NewZKNetFault()
	cfg.Dialer = fault.Dial
	ctx := testCtx(t)
	a, alog := connect(t, cfg, "a")
	raw := rawConn(t, zkc.Servers())
	paths := a.Paths()

	var statuses []registry.Status
	var smu sync.Mutex
	cancel := a.Subscribe(func(st registry.Status) {
		smu.Lock()
		statuses = append(statuses, st)
		smu.Unlock()
	})
	defer cancel()

	rec := sampleRecord("n1")
	if err := a.Register(ctx, rec); err != nil {
		t.Fatal(err)
	}
	zeo := "127.0.0.1:8101"
	if err := a.Advertise(zeo, true); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	first := a.Status()
	if first.Generation != 1 || first.Expirations != 0 {
		t.Fatalf("status %+v", first)
	}

	start := time.Now()
	fault.Cut()
	waitFor(t, "a to notice the disconnection", func() bool { return !a.Status().HasSession() })
	t.Logf("disconnected after %s", time.Since(start).Round(time.Millisecond))
	// An update while cut off must reach the re-created record.
	rec.Role = registry.RoleFenced
	if err := a.Update(rec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to expire a's session", func() bool { return !exists(t, raw, paths.Node("n1")) })
	t.Logf("expired after %s", time.Since(start).Round(time.Millisecond))
	if exists(t, raw, paths.Provider(zeo, true)) {
		t.Fatal("provider entry survived the expiry")
	}
	fault.Heal()
	waitFor(t, "a new session", func() bool {
		st := a.Status()
		return st.HasSession() && st.Generation == 2
	})
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("re-created after %s", time.Since(start).Round(time.Millisecond))
	st := a.Status()
	if st.Expirations != 1 || st.SessionID == first.SessionID {
		t.Fatalf("status after expiry %+v (before %+v)", st, first)
	}
	data, stat := get(t, raw, paths.Node("n1"))
	if stat.EphemeralOwner != st.SessionID {
		t.Fatalf("record owner %x, want new session %x", stat.EphemeralOwner, st.SessionID)
	}
	var got registry.NodeRecord
	if err := json.Unmarshal(data, &got); err != nil || got.Role != registry.RoleFenced {
		t.Fatalf("re-created record %s (%v)", data, err)
	}
	if _, stat := get(t, raw, paths.Provider(zeo, true)); stat.EphemeralOwner != st.SessionID {
		t.Fatal("provider entry not re-created in the new session")
	}
	smu.Lock()
	var states []string
	for _, s := range statuses {
		states = append(states, s.State.String())
	}
	smu.Unlock()
	t.Logf("subscriber saw: %s", strings.Join(states, " "))
	if !strings.Contains(alog.String(), "ZooKeeper session expired") {
		t.Error("no log line about the expiry")
	}
}

// TestHeldByAnotherSession: a record held by another live session is not
// taken over; it is taken once that session ends.
func TestHeldByAnotherSession(t *testing.T) {
	zkc := integration.ZKStandalone(t)
	cfg := testConfig(zkc)
	ctx := testCtx(t)
	a, alog := connect(t, cfg, "a")
	b, _ := connect(t, cfg, "b")
	raw := rawConn(t, zkc.Servers())

	if err := b.Register(ctx, sampleRecord("n1")); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err := a.Register(short, sampleRecord("n1"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Register over another session's record: %v", err)
	}
	if !strings.Contains(alog.String(), "held by another ZooKeeper session") {
		t.Fatalf("no warning:\n%s", alog.String())
	}
	if _, stat := get(t, raw, a.Paths().Node("n1")); stat.EphemeralOwner != b.Status().SessionID {
		t.Fatal("a took over b's record")
	}
	b.Close()
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, stat := get(t, raw, a.Paths().Node("n1")); stat.EphemeralOwner != a.Status().SessionID {
		t.Fatal("a did not take the record once b was gone")
	}
}

// TestElectionRace: of several sessions running for the same epoch
// version, exactly one wins; the Multi is all or nothing.
func TestElectionRace(t *testing.T) {
	zkc := integration.ZKStandalone(t)
	cfg := testConfig(zkc)
	ctx := testCtx(t)
	const n = 5
	var sessions [n]*registry.Session
	for i := range sessions {
		sessions[i], _ = connect(t, cfg, fmt.Sprintf("s%d", i))
	}
	ep, err := sessions[0].ReadEpoch(ctx)
	if err != nil || ep != (registry.Epoch{Value: 0, Version: 0}) {
		t.Fatalf("initial epoch %+v, %v", ep, err)
	}

	var terms [n]registry.Term
	var errs [n]error
	var wg sync.WaitGroup
	startGun := make(chan struct{})
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGun
			terms[i], errs[i] = s.RunForPrimary(ctx, ep.Version, ep.Value+1,
				registry.PrimaryRecord{Name: fmt.Sprintf("s%d", i), ZEO: fmt.Sprintf("127.0.0.1:%d", 8100+i)})
		}()
	}
	close(startGun)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("both s%d and s%d won", winner, i)
			}
			winner = i
		case errors.Is(err, registry.ErrLostRace):
			t.Logf("s%d: %v", i, err)
			var ee *registry.ElectionError
			if !errors.As(err, &ee) || !ee.LostRace {
				t.Fatalf("s%d: %v is not a lost-race ElectionError", i, err)
			}
		default:
			t.Fatalf("s%d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("nobody won")
	}
	w := sessions[winner]
	term := terms[winner]
	if term.Epoch != 1 || term.EpochVersion != 1 || term.SessionID != w.Status().SessionID {
		t.Fatalf("term %+v", term)
	}
	if ep, err := w.ReadEpoch(ctx); err != nil || ep != (registry.Epoch{Value: 1, Version: 1}) {
		t.Fatalf("epoch after the election %+v, %v", ep, err)
	}
	view, err := sessions[(winner+1)%n].ReadPrimary(ctx)
	if err != nil || !view.Present || view.Owner != term.SessionID || view.Record.Name != fmt.Sprintf("s%d", winner) || view.Record.Epoch != 1 {
		t.Fatalf("primary %+v, %v", view, err)
	}
	if err := w.VerifyPrimary(ctx, term); err != nil {
		t.Fatal(err)
	}
	loser := sessions[(winner+1)%n]
	if err := loser.VerifyPrimary(ctx, registry.Term{Epoch: 1, SessionID: loser.Status().SessionID}); !errors.Is(err, registry.ErrNotPrimary) {
		t.Fatalf("loser verified as primary: %v", err)
	}

	// Running again with the stale version, or with the current one while
	// the primary exists, loses and changes nothing.
	if _, err := loser.RunForPrimary(ctx, 0, 1, registry.PrimaryRecord{Name: "late"}); !errors.Is(err, registry.ErrLostRace) || !errors.Is(err, zk.ErrBadVersion) {
		t.Fatalf("stale version: %v", err)
	}
	if _, err := loser.RunForPrimary(ctx, 1, 2, registry.PrimaryRecord{Name: "late"}); !errors.Is(err, registry.ErrLostRace) || !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("primary present: %v", err)
	}
	if ep, err := loser.ReadEpoch(ctx); err != nil || ep != (registry.Epoch{Value: 1, Version: 1}) {
		t.Fatalf("a lost Multi changed the epoch: %+v, %v", ep, err)
	}

	// The sync znode, written by the primary of the term.
	if err := w.WriteSync(ctx, term, registry.SyncRecord{Primary: "s0", Members: []string{"s1", "s2"}}); err != nil {
		t.Fatal(err)
	}
	sr, err := loser.ReadSync(ctx)
	if err != nil || sr.Epoch != 1 || sr.Primary != "s0" || strings.Join(sr.Members, ",") != "s1,s2" {
		t.Fatalf("sync %+v, %v", sr, err)
	}
	if err := loser.WriteSync(ctx, registry.Term{Epoch: 1, EpochVersion: 1, SessionID: 42}, registry.SyncRecord{}); !errors.Is(err, registry.ErrNotPrimary) {
		t.Fatalf("WriteSync from another session: %v", err)
	}
}

// TestWatchPrimary: the primary's appearance, resignation and deletion
// by session end reach a watcher, and a deposed primary can neither
// verify nor write sync.
func TestWatchPrimary(t *testing.T) {
	zkc := integration.ZKStandalone(t)
	cfg := testConfig(zkc)
	ctx := testCtx(t)
	a, _ := connect(t, cfg, "a")
	b, _ := connect(t, cfg, "b")
	c, _ := connect(t, cfg, "c")

	var seen latest[registry.PrimaryView]
	c.WatchPrimary(ctx, seen.set)
	seen.waitFor(t, "no primary", func(v registry.PrimaryView) bool { return !v.Present })

	ep, err := a.ReadEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	termA, err := a.RunForPrimary(ctx, ep.Version, ep.Value+1, registry.PrimaryRecord{Name: "a", ZEO: "127.0.0.1:8100", Replication: "127.0.0.1:5000"})
	if err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "a as primary", func(v registry.PrimaryView) bool {
		return v.Present && v.Owner == a.Status().SessionID && v.Record == registry.PrimaryRecord{Name: "a", ZEO: "127.0.0.1:8100", Replication: "127.0.0.1:5000", Epoch: 1}
	})

	// A planned switchover: a resigns, b wins the next epoch.
	if err := a.Resign(ctx, termA); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "no primary after resigning", func(v registry.PrimaryView) bool { return !v.Present })
	ep, err = b.ReadEpoch(ctx)
	if err != nil || ep.Value != 1 {
		t.Fatalf("epoch %+v, %v", ep, err)
	}
	termB, err := b.RunForPrimary(ctx, ep.Version, ep.Value+1, registry.PrimaryRecord{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "b as primary", func(v registry.PrimaryView) bool { return v.Present && v.Record.Name == "b" && v.Record.Epoch == 2 })
	if err := a.VerifyPrimary(ctx, termA); !errors.Is(err, registry.ErrNotPrimary) {
		t.Fatalf("deposed a verified: %v", err)
	}
	if err := a.WriteSync(ctx, termA, registry.SyncRecord{Primary: "a"}); !errors.Is(err, registry.ErrNotPrimary) {
		t.Fatalf("deposed a wrote sync: %v", err)
	}
	if err := b.WriteSync(ctx, termB, registry.SyncRecord{Primary: "b"}); err != nil {
		t.Fatal(err)
	}

	// The primary's session ends: the watcher sees the primary gone.
	start := time.Now()
	b.Close()
	seen.waitFor(t, "no primary after b's session ended", func(v registry.PrimaryView) bool { return !v.Present })
	t.Logf("primary deletion seen after %s", time.Since(start).Round(time.Millisecond))
	if err := b.VerifyPrimary(ctx, termB); !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("closed b verified: %v", err)
	}
}

// TestZooKeeperDownAtStart: Connect waits, saying so in the log, until
// ZooKeeper comes up, or gives up when its context ends.
func TestZooKeeperDownAtStart(t *testing.T) {
	defer registry.SetWaitLog(500*time.Millisecond, time.Second)()
	zkc := integration.ZKStandalone(t)
	zkc.Stop(0)
	cfg := testConfig(zkc)

	log, buf := testLogger(t, "early")
	short, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	_, err := registry.Connect(short, cfg, log)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), zkc.Server(0)) {
		t.Fatalf("Connect with ZooKeeper down: %v", err)
	}

	log, buf = testLogger(t, "a")
	type result struct {
		s   *registry.Session
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		s, err := registry.Connect(testCtx(t), cfg, log)
		done <- result{s, err}
	}()
	time.Sleep(1500 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("Connect returned while ZooKeeper was down: %v", r.err)
	default:
	}
	if !strings.Contains(buf.String(), "ZooKeeper unavailable; waiting for a session") {
		t.Fatalf("no log line while waiting:\n%s", buf.String())
	}
	zkc.Start(0)
	var r result
	select {
	case r = <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Connect did not return after ZooKeeper came up")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(r.s.Close)
	t.Logf("connected %s after the start", time.Since(start).Round(time.Millisecond))
	if err := r.s.Register(testCtx(t), sampleRecord("n1")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "ZooKeeper is available again") {
		t.Errorf("no log line when ZooKeeper came:\n%s", buf.String())
	}
}

// TestEnsembleLeaderKilled: with the leader of a three-server ensemble
// killed, registration, updates and watches go on.
func TestEnsembleLeaderKilled(t *testing.T) {
	zkc := integration.ZKEnsemble(t, 3)
	cfg := testConfig(zkc)
	cfg.SessionTimeout = 5 * time.Second // the most ZKTickTime allows
	ctx := testCtx(t)
	leader := zkc.Leader()
	if leader < 0 {
		t.Fatal("no leader")
	}
	// a connects to the leader (and only to it until it is killed), so
	// that it has to move its session to another server.
	var onlyLeader atomic.Bool
	onlyLeader.Store(true)
	cfgA := cfg
	cfgA.Dialer = func(network, addr string, timeout time.Duration) (net.Conn, error) {
		if onlyLeader.Load() && addr != zkc.Server(leader) {
			return nil, fmt.Errorf("test: only the leader for now")
		}
		return net.DialTimeout(network, addr, timeout)
	}
	a, _ := connect(t, cfgA, "a")
	if st := a.Status(); st.Server != zkc.Server(leader) {
		t.Fatalf("a connected to %s, not the leader %s", st.Server, zkc.Server(leader))
	}
	b, _ := connect(t, cfg, "b")
	var seen latest[[]registry.NodeRecord]
	b.WatchNodes(ctx, seen.set)
	rec := sampleRecord("n1")
	if err := a.Register(ctx, rec); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "n1", func(n []registry.NodeRecord) bool { _, ok := findNode(n, "n1"); return ok })

	start := time.Now()
	zkc.Kill(leader)
	onlyLeader.Store(false)
	t.Logf("killed leader %d (%s)", leader, zkc.Server(leader))

	c, _ := connect(t, cfg, "c")
	if err := c.Register(ctx, sampleRecord("n2")); err != nil {
		t.Fatal(err)
	}
	t.Logf("new registration after %s", time.Since(start).Round(time.Millisecond))
	rec.Role = registry.RoleSecondary
	if err := a.Update(rec); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "n1 updated and n2 in b's watch", func(n []registry.NodeRecord) bool {
		got, _ := findNode(n, "n1")
		_, ok := findNode(n, "n2")
		return ok && got.Role == registry.RoleSecondary
	})
	t.Logf("update seen after %s; a: %+v, b: %+v", time.Since(start).Round(time.Millisecond), a.Status(), b.Status())
	if st := a.Status(); st.Generation != 1 || st.Server == zkc.Server(leader) {
		t.Errorf("a did not move its session to another server within the session timeout: %+v", st)
	}
	if next := zkc.Leader(); next < 0 || next == leader {
		t.Fatalf("leader after the kill: %d", next)
	}
	ep, err := c.ReadEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RunForPrimary(ctx, ep.Version, ep.Value+1, registry.PrimaryRecord{Name: "n2"}); err != nil {
		t.Fatal(err)
	}
}
