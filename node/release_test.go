package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
	"github.com/zrs-go/zrs/wire/zrs"
)

// heldSecondary is a zrs-go/1 replica that holds what its upstream has
// not released (ZooKeeper mode's setting).
type heldSecondary struct {
	store *storage.FileStorage
	rep   *Replica
}

func startHeld(t testing.TB, name, upstream string) *heldSecondary {
	t.Helper()
	store, err := storage.Open(filepath.Join(t.TempDir(), name+".fs"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep := NewReplica(ReplicaConfig{Storage: store, Name: name, KeepAlive: time.Second,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Rewind: true, HoldUnreleased: true,
		Logger: hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Error})}, upstream)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rep.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica %s: %v", name, err)
		}
		store.Close()
	})
	return &heldSecondary{store: store, rep: rep}
}

// blockingGate wraps the feed's gate: nothing is released before open is
// closed, acknowledged or not.
func blockingGate(f *Feed) (storage.CommitGate, chan struct{}) {
	open := make(chan struct{})
	fg := f.Gate()
	return func(ctx context.Context, tid storage.Tid) error {
		select {
		case <-open:
		case <-ctx.Done():
			return ctx.Err()
		}
		return fg(ctx, tid)
	}, open
}

// commitBackground commits one new object on the rig's primary; the
// result arrives once the commit is acknowledged (or refused).
func (r *syncRig) commitBackground() <-chan error {
	out := make(chan error, 1)
	go func() {
		_, err := r.commit()
		out <- err
	}()
	return out
}

// waitAcked waits until every secondary holds tid durably and the
// primary knows (its acknowledgement arrived).
func (r *syncRig) waitAcked(tid storage.Tid, secs map[string]*heldSecondary) {
	r.t.Helper()
	syncWaitFor(r.t, fmt.Sprintf("secondaries to acknowledge %s", tid), func() bool {
		lags := r.feed.Lags()
		for name, s := range secs {
			if s.store.LastDurable() < tid || lags[name].Acked < tid {
				return false
			}
		}
		return true
	})
}

// stillHeld checks for a while that no secondary shows tid.
func stillHeld(t *testing.T, tid storage.Tid, secs map[string]*heldSecondary, why string) {
	t.Helper()
	deadline := time.Now().Add(150 * time.Millisecond)
	for time.Now().Before(deadline) {
		for name, s := range secs {
			if s.store.LastTransaction() >= tid {
				t.Fatalf("%s: %s shows %s (%s)", name, why, tid, s.store.LastTransaction())
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReleaseHoldsUnacknowledgedCommits: with synchronous = 1 a commit
// that the primary has not acknowledged is durable and acknowledged on
// the secondaries but visible on none; it becomes visible there right
// after the primary releases it, and no secondary ever shows more than
// the primary.
func TestReleaseHoldsUnacknowledgedCommits(t *testing.T) {
	r := newSyncRig(t, FeedConfig{Synchronous: 1})
	base, err := r.commit()
	if err != nil {
		t.Fatal(err)
	}
	secs := map[string]*heldSecondary{"s1": startHeld(t, "s1", r.addr), "s2": startHeld(t, "s2", r.addr)}
	r.waitConnected("s1", "s2")
	// What was visible before the secondaries connected is released by
	// the Release that follows the handshake.
	syncWaitFor(t, "the base commit on the secondaries", func() bool {
		return secs["s1"].store.LastTransaction() == base && secs["s2"].store.LastTransaction() == base
	})
	gate, open := blockingGate(r.feed)
	r.primary.SetCommitGate(gate)

	fin := r.commitBackground()
	tid := r.primary.LastDurable()
	for tid == base {
		time.Sleep(time.Millisecond)
		tid = r.primary.LastDurable()
	}
	r.waitAcked(tid, secs)
	stillHeld(t, tid, secs, "before the primary acknowledged it")
	for name, s := range secs {
		// The held commit created oid 2 (the base, oid 1).
		if _, serial, err := s.store.Load(storage.Oid(2)); err == nil {
			t.Fatalf("%s: Load of the held commit's object = revision %s", name, serial)
		}
		if _, err := s.store.TxnAt(tid); !errors.Is(err, storage.ErrNoTransaction) {
			t.Fatalf("%s: TxnAt(held) = %v", name, err)
		}
	}

	released := time.Now()
	close(open)
	if err := <-fin; err != nil {
		t.Fatal(err)
	}
	syncWaitFor(t, "the released commit on the secondaries", func() bool {
		return secs["s1"].store.LastTransaction() == tid && secs["s2"].store.LastTransaction() == tid
	})
	t.Logf("visible on both secondaries %s after the release", time.Since(released))

	// Under load no secondary ever shows more than the primary (read the
	// secondary first: the primary only moves forward).
	stop := make(chan struct{})
	var violation atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for name, s := range secs {
				if sec, prim := s.store.LastTransaction(), r.primary.LastTransaction(); sec > prim {
					violation.CompareAndSwap(nil, fmt.Sprintf("%s shows %s, the primary only %s", name, sec, prim))
				}
			}
		}
	}()
	var last storage.Tid
	for i := 0; i < 50; i++ {
		if last, err = r.commit(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if v := violation.Load(); v != nil {
		t.Fatal(v)
	}
	syncWaitFor(t, "the last commit on the secondaries", func() bool {
		return secs["s1"].store.LastTransaction() == last && secs["s2"].store.LastTransaction() == last
	})
}

// TestFeedSendsReleases: a zrs-go/1 secondary is told what is visible
// right after the handshake and after publications, coalesced, moving
// forward only and ending with the last commit.
func TestFeedSendsReleases(t *testing.T) {
	r := newSyncRig(t, FeedConfig{})
	base, err := r.commit()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hello, err := go1Frame(&zrs.Hello{Node: "raw", LastTid: 0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(hello); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	fr := zeo.NewFrameReader(nc, zrs.MaxFrameSize)
	next := func() zrs.Go1Message {
		t.Helper()
		p, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		m, err := zrs.DecodeGo1(p)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if a, ok := next().(*zrs.Answer); !ok || a.Kind != zrs.AnswerStream {
		t.Fatalf("answer %+v", a)
	}
	if m, ok := next().(*zrs.Release); !ok || m.Tid != base {
		t.Fatalf("first message after the answer %+v, want Release{%s}", m, base)
	}
	const n = 20
	var last storage.Tid
	for i := 0; i < n; i++ {
		if last, err = r.commit(); err != nil {
			t.Fatal(err)
		}
	}
	var txns []storage.Tid
	releases, prev := 0, base
	// The stream starts from the beginning: the base, then the commits.
	for prev != last || len(txns) < n+1 {
		switch m := next().(type) {
		case *zrs.Txn:
			txns = append(txns, m.Record.Tid)
		case *zrs.Release:
			// Forward only, and only to what was published (it may be
			// ahead of the transactions sent: they are visible here).
			if m.Tid <= prev || m.Tid > last {
				t.Fatalf("Release{%s} after Release{%s}, last commit %s", m.Tid, prev, last)
			}
			prev = m.Tid
			releases++
		case *zrs.Heartbeat:
		default:
			t.Fatalf("unexpected %T", m)
		}
	}
	if len(txns) != n+1 || releases > n {
		t.Fatalf("%d transactions and %d releases for %d commits after the base", len(txns), releases, n)
	}
}

// TestReleaseAsyncPrimary: an asynchronous primary releases at once, and
// held secondaries show each commit promptly.
func TestReleaseAsyncPrimary(t *testing.T) {
	r := newSyncRig(t, FeedConfig{})
	secs := map[string]*heldSecondary{"s1": startHeld(t, "s1", r.addr), "s2": startHeld(t, "s2", r.addr)}
	r.waitConnected("s1", "s2")
	var worst time.Duration
	for i := 0; i < 50; i++ {
		tid, err := r.commit()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		syncWaitFor(t, fmt.Sprintf("commit %s on the secondaries", tid), func() bool {
			return secs["s1"].store.LastTransaction() >= tid && secs["s2"].store.LastTransaction() >= tid
		})
		worst = max(worst, time.Since(start))
	}
	t.Logf("slowest commit visible on both secondaries after %s", worst)
	if worst > 2*time.Second {
		t.Fatalf("a commit took %s to show on the secondaries", worst)
	}
}

// TestReleaseHoldAcrossUpstreamChange: held transactions stay held while
// the replica is detached and repointed, and the next upstream connection
// releases them; on promotion (ReleaseHold) they become visible, a flush
// meanwhile does not block, and the replica does not hold again.
func TestReleaseHoldAcrossUpstreamChange(t *testing.T) {
	r := newSyncRig(t, FeedConfig{Synchronous: 1})
	s1 := startHeld(t, "s1", r.addr)
	secs := map[string]*heldSecondary{"s1": s1}
	r.waitConnected("s1")
	gate, open := blockingGate(r.feed)
	r.primary.SetCommitGate(gate)

	// Detached and repointed: still held until the upstream releases.
	fin := r.commitBackground()
	syncWaitFor(t, "a durable commit", func() bool { return r.primary.LastDurable() != 0 })
	t1 := r.primary.LastDurable()
	r.waitAcked(t1, secs)
	s1.rep.SetUpstream("")
	syncWaitFor(t, "s1 to disconnect", func() bool { return !s1.rep.Lag().Connected })
	stillHeld(t, t1, secs, "detached")
	s1.rep.SetUpstream(r.addr)
	r.waitConnected("s1")
	stillHeld(t, t1, secs, "reconnected, not released")
	close(open)
	if err := <-fin; err != nil {
		t.Fatal(err)
	}
	syncWaitFor(t, "the release after reconnecting", func() bool { return s1.store.LastTransaction() == t1 })

	// Promotion: detach, flush (as the node does), release the hold.
	gate, open = blockingGate(r.feed)
	r.primary.SetCommitGate(gate)
	defer close(open)
	r.commitBackground()
	syncWaitFor(t, "a second durable commit", func() bool { return r.primary.LastDurable() > t1 })
	t2 := r.primary.LastDurable()
	r.waitAcked(t2, secs)
	s1.rep.SetUpstream("")
	syncWaitFor(t, "s1 to disconnect", func() bool { return !s1.rep.Lag().Connected })
	flushed := make(chan error, 1)
	go func() { flushed <- s1.store.Flush() }()
	select {
	case err := <-flushed:
		if !errors.Is(err, storage.ErrNotAcknowledged) {
			t.Fatalf("Flush of held transactions while detached = %v, want ErrNotAcknowledged", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Flush blocked on held transactions while detached")
	}
	stillHeld(t, t2, secs, "detached before promotion")
	s1.rep.ReleaseHold()
	syncWaitFor(t, "held transactions to show after ReleaseHold", func() bool { return s1.store.LastTransaction() == t2 })
	// The promoted node commits without any gate.
	txn, err := s1.store.TpcBegin(context.Background(), storage.TxnMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(storage.Oid(1000), 0, []byte("new primary")); err != nil {
		t.Fatal(err)
	}
	if err := txn.TpcVote(); err != nil {
		t.Fatal(err)
	}
	own, err := txn.TpcFinish()
	if err != nil {
		t.Fatal(err)
	}
	if s1.store.LastTransaction() != own {
		t.Fatalf("the promoted node's commit %s is not visible (last %s)", own, s1.store.LastTransaction())
	}
}

// TestReleaseHoldRewind: a secondary holding transactions that its new
// upstream lacks rewinds them without blocking, then shows the new
// upstream's history as it is released.
func TestReleaseHoldRewind(t *testing.T) {
	const baseTid = storage.Tid(0x03f58e0000000010)
	r := newSyncRig(t, FeedConfig{Synchronous: 1})
	rwCommitTo(t, r.primary, baseTid, "base")
	s1 := startHeld(t, "s1", r.addr)
	secs := map[string]*heldSecondary{"s1": s1}
	r.waitConnected("s1")
	syncWaitFor(t, "the base on s1", func() bool { return s1.store.LastTransaction() == baseTid })
	gate, open := blockingGate(r.feed)
	r.primary.SetCommitGate(gate)
	defer close(open)
	r.commitBackground()
	r.commitBackground()
	syncWaitFor(t, "two held commits", func() bool {
		n := 0
		it, err := r.primary.IterateDurable(baseTid + 1)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := it.Next(); err != nil {
				return n == 2
			}
			n++
		}
	})
	held := r.primary.LastDurable()
	r.waitAcked(held, secs)
	stillHeld(t, held, secs, "before the release")

	// Another history: the base, then one transaction of its own.
	other, err := storage.Open(filepath.Join(t.TempDir(), "other.fs"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rwCommitTo(t, other, baseTid, "base")
	otherTid := baseTid + 1
	rwCommitTo(t, other, otherTid, "other")
	addr := serveFeed(t, other)

	s1.rep.SetUpstream(addr)
	syncWaitFor(t, "s1 to rewind and follow the other history", func() bool {
		return s1.store.LastTransaction() == otherTid && s1.store.LastDurable() == otherTid
	})
	if data, serial, err := s1.store.Load(0); err != nil || string(data) != "other" || serial != otherTid {
		t.Fatalf("Load after the rewind = %q %s %v", data, serial, err)
	}
	if _, err := s1.store.TxnAt(held); !errors.Is(err, storage.ErrNoTransaction) {
		t.Fatalf("TxnAt(rewound %s) = %v", held, err)
	}
	// It holds again for the new upstream, which releases at once.
	rwCommitTo(t, other, otherTid+1, "more")
	syncWaitFor(t, "the next commit of the other history", func() bool { return s1.store.LastTransaction() == otherTid+1 })
}

// rwCommitTo commits oid 0 = data with an explicit tid, so that two
// storages can share a history.
func rwCommitTo(t testing.TB, s *storage.FileStorage, tid storage.Tid, data string) {
	t.Helper()
	txn, err := s.TpcBegin(context.Background(), storage.TxnMeta{Tid: tid, User: []byte("test")})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Restore(0, tid, []byte(data), 0); err != nil {
		t.Fatal(err)
	}
	if err := txn.TpcVote(); err != nil {
		t.Fatal(err)
	}
	if _, err := txn.TpcFinish(); err != nil {
		t.Fatal(err)
	}
}

// serveFeed serves store's replication stream (asynchronous) until the
// test ends, and closes store then.
func serveFeed(t testing.TB, store *storage.FileStorage) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := NewFeed(FeedConfig{Storage: store, KeepAlive: time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "other", Level: hclog.Error})})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- f.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-served
		store.Close()
	})
	return ln.Addr().String()
}

// BenchmarkReplicationLagRelease commits 500 transactions a second on a
// primary and measures when each is visible on a zrs-go/1 secondary:
// without the hold, holding for the primary's release, and holding with
// synchronous = 1 (measured from the acknowledged commit).
func BenchmarkReplicationLagRelease(b *testing.B) {
	for _, c := range []struct {
		sync int
		held bool
	}{{0, false}, {0, true}, {1, true}} {
		b.Run(fmt.Sprintf("synchronous=%d/held=%v", c.sync, c.held), func(b *testing.B) {
			r := newSyncRig(b, FeedConfig{Synchronous: c.sync})
			var sec *storage.FileStorage
			if c.held {
				sec = startHeld(b, "s1", r.addr).store
			} else {
				sec = r.startSecondary("s1").store
			}
			r.waitConnected("s1")
			if c.sync > 0 {
				r.primary.SetCommitGate(r.feed.Gate())
			}
			if _, err := r.commit(); err != nil {
				b.Fatal(err)
			}
			var lags []time.Duration
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				<-tick.C
				changed := sec.Changed()
				tid, err := r.commit()
				if err != nil {
					b.Fatal(err)
				}
				committed := time.Now()
				for sec.LastTransaction() < tid {
					select {
					case <-changed:
						changed = sec.Changed()
					case <-time.After(5 * time.Second):
						b.Fatal("the secondary did not show the commit")
					}
				}
				lags = append(lags, time.Since(committed))
			}
			b.StopTimer()
			sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
			if len(lags) > 0 {
				b.ReportMetric(float64(lags[len(lags)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}
