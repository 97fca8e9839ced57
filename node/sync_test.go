package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/storage"
)

func TestSyncSetDecide(t *testing.T) {
	const tid, floor = storage.Tid(100), storage.Tid(90)
	grace, timeout := 200*time.Millisecond, 10*time.Second
	type acks = map[string]storage.Tid
	cases := []struct {
		name      string
		n         int
		strict    bool
		members   []string // nil: none recorded yet
		released  storage.Tid
		acked     acks
		connected []string
		elapsed   time.Duration
		verdict   syncVerdict
		want      []string
		record    bool
	}{
		{name: "all members acked", n: 1, members: []string{"a", "b"},
			acked: acks{"a": 100, "b": 120}, connected: []string{"a", "b"},
			verdict: syncRelease, want: []string{"a", "b"}},
		{name: "a connected member lags: wait for it", n: 1, members: []string{"a", "b"},
			acked: acks{"a": 100, "b": 95}, connected: []string{"a", "b"},
			verdict: syncWait},
		{name: "after the grace period the laggard is dropped", n: 1, members: []string{"a", "b"},
			acked: acks{"a": 100, "b": 95}, connected: []string{"a", "b"}, elapsed: grace,
			verdict: syncRelease, want: []string{"a"}, record: true},
		{name: "a disconnected laggard is dropped at once", n: 1, members: []string{"a", "b"},
			acked: acks{"a": 100, "b": 95}, connected: []string{"a"},
			verdict: syncRelease, want: []string{"a"}, record: true},
		{name: "a disconnected member that acked stays", n: 1, members: []string{"a", "b"},
			acked: acks{"a": 100, "b": 100}, connected: []string{"a"},
			verdict: syncRelease, want: []string{"a", "b"}},
		{name: "the first release records the members", n: 1,
			acked: acks{"a": 100}, connected: []string{"a"},
			verdict: syncRelease, want: []string{"a"}, record: true},
		{name: "first release waits for a caught-up secondary", n: 1,
			acked: acks{"a": 90}, connected: []string{"a"},
			verdict: syncWait},
		{name: "non-strict, nobody at all: release and record no members", n: 1,
			verdict: syncRelease, want: []string{}, record: true},
		{name: "non-strict, already degraded: release at once", n: 1, members: []string{},
			acked: acks{"c": 50}, connected: []string{"c"},
			verdict: syncRelease, want: []string{}},
		{name: "non-strict, the only member is gone: wait the grace period", n: 1, members: []string{"a"},
			acked:   acks{"a": 95},
			verdict: syncWait},
		{name: "non-strict, the only member is gone: then degrade", n: 1, members: []string{"a"},
			acked: acks{"a": 95}, elapsed: grace,
			verdict: syncRelease, want: []string{}, record: true},
		{name: "strict, too few: wait past the grace period", n: 1, strict: true, members: []string{"a"},
			acked: acks{"a": 95}, elapsed: grace,
			verdict: syncWait},
		{name: "strict, too few: time out", n: 1, strict: true, members: []string{"a"},
			acked: acks{"a": 95}, elapsed: timeout,
			verdict: syncTimeout},
		{name: "strict, nobody: wait", n: 1, strict: true, members: []string{},
			verdict: syncWait},
		{name: "strict, enough after the grace period: drop the laggard", n: 1, strict: true, members: []string{"a", "b"},
			acked: acks{"a": 100, "b": 95}, connected: []string{"a", "b"}, elapsed: grace,
			verdict: syncRelease, want: []string{"a"}, record: true},
		{name: "a caught-up secondary is waited for", n: 1, members: []string{"a"},
			acked: acks{"a": 100, "c": 90}, connected: []string{"a", "c"},
			verdict: syncWait},
		{name: "a caught-up secondary joins when it acks", n: 1, members: []string{"a"},
			acked: acks{"a": 100, "c": 100}, connected: []string{"a", "c"},
			verdict: syncRelease, want: []string{"a", "c"}, record: true},
		{name: "a secondary behind does not hold commits", n: 1, members: []string{"a"},
			acked: acks{"a": 100, "c": 50}, connected: []string{"a", "c"},
			verdict: syncRelease, want: []string{"a"}},
		{name: "a disconnected non-member does not count", n: 1, members: []string{},
			acked: acks{"c": 100}, strict: true, elapsed: grace,
			verdict: syncWait},
		{name: "joining needs the last release, not only the published tid", n: 1, members: []string{"a"}, released: 95,
			acked: acks{"a": 100, "c": 92}, connected: []string{"a", "c"},
			verdict: syncRelease, want: []string{"a"}},
		{name: "two required, one member gone: wait", n: 2, members: []string{"a", "b"},
			acked: acks{"a": 100, "b": 95}, connected: []string{"a"},
			verdict: syncWait},
		{name: "two required, one member gone: degrade", n: 2, members: []string{"a", "b"},
			acked: acks{"a": 100, "b": 95}, connected: []string{"a"}, elapsed: grace,
			verdict: syncRelease, want: []string{"a"}, record: true},
		{name: "two required, degraded: the remaining member still counts", n: 2, members: []string{"a"},
			acked: acks{"a": 95}, connected: []string{"a"},
			verdict: syncWait},
		{name: "two required, degraded: release once it acked", n: 2, members: []string{"a"},
			acked: acks{"a": 100}, connected: []string{"a"},
			verdict: syncRelease, want: []string{"a"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := syncSet{n: c.n, strict: c.strict, grace: grace, timeout: timeout, released: c.released}
			if c.members != nil {
				s.recorded(c.members)
			}
			in := syncInput{tid: tid, floor: floor, acked: c.acked, connected: map[string]bool{}, elapsed: c.elapsed}
			for _, name := range c.connected {
				in.connected[name] = true
			}
			d := s.decide(in)
			if d.verdict != c.verdict {
				t.Fatalf("verdict %s, want %s (%+v)", d.verdict, c.verdict, d)
			}
			switch d.verdict {
			case syncRelease:
				if !slices.Equal(d.members, c.want) || d.members == nil || d.record != c.record {
					t.Fatalf("release members %q record %v, want %q record %v", d.members, d.record, c.want, c.record)
				}
				for _, m := range d.members {
					if c.acked[m] < tid {
						t.Fatalf("member %s has not acknowledged %s", m, tid)
					}
				}
				if len(removed(s.members, d.members)) > 0 && !d.record {
					t.Fatal("members removed without recording")
				}
			case syncWait:
				if d.wait <= 0 || c.elapsed+d.wait > timeout {
					t.Fatalf("wait %s", d.wait)
				}
			}
		})
	}
}

func TestSyncSetJoins(t *testing.T) {
	in := func(acked map[string]storage.Tid, connected ...string) syncInput {
		c := map[string]bool{}
		for _, name := range connected {
			c[name] = true
		}
		return syncInput{floor: 90, acked: acked, connected: c}
	}
	var s syncSet
	if _, ok := s.joins(in(map[string]storage.Tid{"a": 100}, "a")); ok {
		t.Fatal("a join before the first release")
	}
	s.recorded([]string{"a"})
	s.releasedTid(95)
	if m, ok := s.joins(in(map[string]storage.Tid{"a": 95, "c": 95}, "a", "c")); !ok || !slices.Equal(m, []string{"a", "c"}) {
		t.Fatalf("caught-up c: %v %v", m, ok)
	}
	if _, ok := s.joins(in(map[string]storage.Tid{"a": 95, "c": 94}, "a", "c")); ok {
		t.Fatal("c joined while behind the last release")
	}
	if _, ok := s.joins(in(map[string]storage.Tid{"a": 95, "c": 95}, "a")); ok {
		t.Fatal("a disconnected secondary joined")
	}
}

// syncRig is a primary storage with a feed and zrs-go/1 replicas on
// loopback.
type syncRig struct {
	t       testing.TB
	primary *storage.FileStorage
	feed    *Feed
	addr    string

	mu      sync.Mutex
	changes [][]string // OnSyncChange calls
	secs    map[string]*syncSecondary
}

type syncSecondary struct {
	path   string
	store  *storage.FileStorage
	cancel context.CancelFunc
	done   chan error
}

func newSyncRig(t testing.TB, cfg FeedConfig) *syncRig {
	t.Helper()
	primary, err := storage.Open(filepath.Join(t.TempDir(), "Data.fs"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &syncRig{t: t, primary: primary, secs: make(map[string]*syncSecondary)}
	cfg.Storage = primary
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "feed", Level: hclog.Error})
	cfg.KeepAlive = time.Second
	cfg.OnSyncChange = func(ctx context.Context, members []string) error {
		r.mu.Lock()
		r.changes = append(r.changes, members)
		r.mu.Unlock()
		return nil
	}
	r.feed = NewFeed(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- r.feed.Serve(ctx, ln) }()
	t.Cleanup(func() {
		r.mu.Lock()
		names := make([]string, 0, len(r.secs))
		for name := range r.secs {
			names = append(names, name)
		}
		r.mu.Unlock()
		for _, name := range names {
			r.stopSecondary(name)
		}
		cancel()
		<-served
		primary.Close()
	})
	return r
}

// startSecondary starts (or restarts, on the same data file) a replica.
func (r *syncRig) startSecondary(name string) *syncSecondary {
	r.t.Helper()
	r.mu.Lock()
	sec := r.secs[name]
	if sec == nil {
		sec = &syncSecondary{path: filepath.Join(r.t.TempDir(), name+".fs")}
		r.secs[name] = sec
	}
	r.mu.Unlock()
	store, err := storage.Open(sec.path, storage.Options{})
	if err != nil {
		r.t.Fatal(err)
	}
	rep := NewReplica(ReplicaConfig{Storage: store, Name: name, KeepAlive: time.Second,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Logger: hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Error})}, r.addr)
	ctx, cancel := context.WithCancel(context.Background())
	sec.store, sec.cancel, sec.done = store, cancel, make(chan error, 1)
	go func() { sec.done <- rep.Run(ctx) }()
	return sec
}

// stopSecondary stops a replica and closes its storage.
func (r *syncRig) stopSecondary(name string) {
	r.mu.Lock()
	sec := r.secs[name]
	r.mu.Unlock()
	if sec == nil || sec.cancel == nil {
		return
	}
	sec.cancel()
	<-sec.done
	sec.store.Close()
	sec.cancel = nil
}

// commit commits one new object on the primary.
func (r *syncRig) commit() (storage.Tid, error) {
	oids, err := r.primary.NewOids(1)
	if err != nil {
		return 0, err
	}
	txn, err := r.primary.TpcBegin(context.Background(), storage.TxnMeta{User: []byte("sync")})
	if err != nil {
		return 0, err
	}
	if err := txn.Store(oids[0], 0, make([]byte, 100)); err != nil {
		txn.TpcAbort()
		return 0, err
	}
	if err := txn.TpcVote(); err != nil {
		txn.TpcAbort()
		return 0, err
	}
	return txn.TpcFinish()
}

func (r *syncRig) lastChange() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.changes) == 0 {
		return nil, 0
	}
	return r.changes[len(r.changes)-1], len(r.changes)
}

func (r *syncRig) waitConnected(names ...string) {
	r.t.Helper()
	syncWaitFor(r.t, fmt.Sprintf("secondaries %v to connect", names), func() bool {
		lags := r.feed.Lags()
		for _, name := range names {
			if _, ok := lags[name]; !ok {
				return false
			}
		}
		return true
	})
}

func syncWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestSyncCommitsWaitForASecondary: with synchronous = 1, every commit
// returns only once a secondary holds it durably; a stopped secondary is
// removed from the members and commits go on; restarted, it rejoins once
// caught up.
func TestSyncCommitsWaitForASecondary(t *testing.T) {
	r := newSyncRig(t, FeedConfig{Synchronous: 1})
	s1, s2 := r.startSecondary("s1"), r.startSecondary("s2")
	r.waitConnected("s1", "s2")
	r.primary.SetCommitGate(r.feed.Gate())

	held := func(tid storage.Tid, secs ...*syncSecondary) bool {
		for _, s := range secs {
			// A replica publishes what it applied only after its fsync,
			// and acknowledges after that.
			if s.store.LastTransaction() >= tid {
				return true
			}
		}
		return false
	}
	for i := 0; i < 30; i++ {
		tid, err := r.commit()
		if err != nil {
			t.Fatal(err)
		}
		if !held(tid, s1, s2) {
			t.Fatalf("commit %d (%s) acknowledged before any secondary held it", i, tid)
		}
	}
	if m := r.feed.SyncMembers(); !slices.Equal(m, []string{"s1", "s2"}) {
		t.Fatalf("members %v, want both", m)
	}
	if m, _ := r.lastChange(); !slices.Equal(m, []string{"s1", "s2"}) {
		t.Fatalf("recorded members %v, want both", m)
	}

	// Stop s2: it is removed (recorded) and commits continue on s1.
	r.stopSecondary("s2")
	for i := 0; i < 10; i++ {
		start := time.Now()
		tid, err := r.commit()
		if err != nil {
			t.Fatal(err)
		}
		if !held(tid, s1) {
			t.Fatalf("commit %s acknowledged before s1 held it", tid)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("commit took %s without s2", d)
		}
	}
	if m, _ := r.lastChange(); !slices.Equal(m, []string{"s1"}) {
		t.Fatalf("recorded members %v after stopping s2, want [s1]", m)
	}
	if m := r.feed.SyncMembers(); !slices.Equal(m, []string{"s1"}) {
		t.Fatalf("members %v after stopping s2", m)
	}

	// Restarted, s2 catches up and rejoins, recorded, without a commit.
	s2 = r.startSecondary("s2")
	syncWaitFor(t, "s2 to rejoin", func() bool {
		m, _ := r.lastChange()
		return slices.Equal(m, []string{"s1", "s2"})
	})
	if s2.store.LastTransaction() != r.primary.LastTransaction() {
		t.Fatalf("s2 rejoined at %s, not caught up to %s", s2.store.LastTransaction(), r.primary.LastTransaction())
	}
	// Both are waited for again: stop s1 and every commit is on s2.
	r.stopSecondary("s1")
	for i := 0; i < 5; i++ {
		tid, err := r.commit()
		if err != nil {
			t.Fatal(err)
		}
		if !held(tid, s2) {
			t.Fatalf("commit %s acknowledged before s2 held it", tid)
		}
	}
	if m := r.feed.SyncMembers(); !slices.Equal(m, []string{"s2"}) {
		t.Fatalf("members %v after stopping s1", m)
	}
}

// TestSyncNonStrictDegrades: without secondaries, a non-strict primary
// records that it has no members and commits asynchronously.
func TestSyncNonStrictDegrades(t *testing.T) {
	r := newSyncRig(t, FeedConfig{Synchronous: 1, SyncGrace: 50 * time.Millisecond})
	r.primary.SetCommitGate(r.feed.Gate())
	for i := 0; i < 5; i++ {
		start := time.Now()
		if _, err := r.commit(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("degraded commit took %s", d)
		}
	}
	m, n := r.lastChange()
	if n != 1 || m == nil || len(m) != 0 {
		t.Fatalf("sync changes: last %v of %d, want one recording no members", m, n)
	}
	if m := r.feed.SyncMembers(); len(m) != 0 {
		t.Fatalf("members %v", m)
	}
	// A secondary that catches up joins.
	r.startSecondary("s1")
	syncWaitFor(t, "s1 to join", func() bool { return slices.Equal(r.feed.SyncMembers(), []string{"s1"}) })
}

// TestSyncStrictTimesOut: a strict primary without secondaries fails
// commits with ErrSyncTimeout after the commit timeout; the transaction
// stays durable and is published once a secondary acknowledges it.
func TestSyncStrictTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	r := newSyncRig(t, FeedConfig{Synchronous: 1, Strict: true, CommitTimeout: timeout, SyncGrace: 50 * time.Millisecond})
	r.primary.SetCommitGate(r.feed.Gate())
	start := time.Now()
	_, err := r.commit()
	if !errors.Is(err, ErrSyncTimeout) || !errors.Is(err, storage.ErrNotAcknowledged) {
		t.Fatalf("commit = %v, want ErrSyncTimeout and ErrNotAcknowledged", err)
	}
	if d := time.Since(start); d < timeout || d > 5*timeout {
		t.Fatalf("failed after %s, want about %s", d, timeout)
	}
	tid := r.primary.LastDurable()
	if r.primary.LastTransaction() == tid {
		t.Fatal("the unacknowledged commit is visible")
	}
	s1 := r.startSecondary("s1")
	syncWaitFor(t, "the refused commit to be published once acknowledged", func() bool {
		return r.primary.LastTransaction() == tid
	})
	if s1.store.LastTransaction() < tid {
		t.Fatal("published before the secondary held it")
	}
	if m := r.feed.SyncMembers(); !slices.Equal(m, []string{"s1"}) {
		t.Fatalf("members %v", m)
	}
	if _, err := r.commit(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkCommitSync compares commit latency (sequential) and
// throughput (8 committers) on a primary with two secondaries, with
// synchronous = 0 and 1.
func BenchmarkCommitSync(b *testing.B) {
	for _, n := range []int{0, 1} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("synchronous=%d/committers=%d", n, par), func(b *testing.B) {
				r := newSyncRig(b, FeedConfig{Synchronous: n})
				r.startSecondary("s1")
				r.startSecondary("s2")
				r.waitConnected("s1", "s2")
				if n > 0 {
					r.primary.SetCommitGate(r.feed.Gate())
				}
				if _, err := r.commit(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for w := 0; w < par; w++ {
					wg.Add(1)
					go func(w int) {
						defer wg.Done()
						for i := w; i < b.N; i += par {
							if _, err := r.commit(); err != nil {
								b.Error(err)
								return
							}
						}
					}(w)
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commits/s")
			})
		}
	}
}
