package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testGate is a commit gate the test drives: each call is reported on
// calls and answered from answers (or by ctx).
type testGate struct {
	calls   chan Tid
	answers chan error
}

func newTestGate() *testGate {
	return &testGate{calls: make(chan Tid, 100), answers: make(chan error)}
}

func (g *testGate) gate(ctx context.Context, tid Tid) error {
	g.calls <- tid
	select {
	case err := <-g.answers:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *testGate) nextCall(t *testing.T) Tid {
	t.Helper()
	select {
	case tid := <-g.calls:
		return tid
	case <-time.After(5 * time.Second):
		t.Fatal("the gate was not called")
		return 0
	}
}

func (g *testGate) noCall(t *testing.T) {
	t.Helper()
	select {
	case tid := <-g.calls:
		t.Fatalf("unexpected gate call for %s", tid)
	case <-time.After(50 * time.Millisecond):
	}
}

// finishResult is what a TpcFinish in the background returned.
type finishResult struct {
	tid Tid
	err error
}

// commitAsync commits oid → data and finishes in the background. It
// returns once the transaction is queued (the commit lock is free again).
func commitAsync(t *testing.T, s *FileStorage, oid Oid, serial Tid, data string) (Tid, <-chan finishResult) {
	t.Helper()
	txn, err := s.TpcBegin(context.Background(), TxnMeta{User: []byte("u")})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(oid, serial, []byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := txn.TpcVote(); err != nil {
		t.Fatal(err)
	}
	out := make(chan finishResult, 1)
	go func() {
		tid, err := txn.TpcFinish()
		out <- finishResult{tid, err}
	}()
	// The commit lock is released at finish, before durability.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case s.commitLock <- struct{}{}:
		<-s.commitLock
	case <-ctx.Done():
		t.Fatal("finish did not release the commit lock")
	}
	return txn.Tid(), out
}

func waitFinish(t *testing.T, ch <-chan finishResult) finishResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("TpcFinish did not return")
		return finishResult{}
	}
}

func notReturned(t *testing.T, ch <-chan finishResult) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("TpcFinish returned (%s, %v) before what it waits for (the gate, an earlier vote)", r.tid, r.err)
	case <-time.After(20 * time.Millisecond):
	}
}

// iterTids lists the tids an iterator yields until io.EOF.
func iterTids(t *testing.T, it *Iterator) []Tid {
	t.Helper()
	var out []Tid
	for {
		rec, err := it.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec.Tid)
	}
}

func tidsEqual(a, b []Tid) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGateHoldsVisibility: a transaction the gate has not released is
// durable and streamable but invisible to every reader; later commits
// proceed behind it and one gate call releases them together.
func TestGateHoldsVisibility(t *testing.T) {
	s := openTemp(t)
	base := commit(t, s, nil, map[Oid][]byte{1: []byte("base")})
	g := newTestGate()
	s.SetCommitGate(g.gate)

	durable := s.DurableChanged()
	t1, fin1 := commitAsync(t, s, 1, base, "one")
	if got := g.nextCall(t); got != t1 {
		t.Fatalf("gate called for %s, want %s", got, t1)
	}
	select {
	case <-durable:
	default:
		t.Fatal("DurableChanged did not fire")
	}
	notReturned(t, fin1)
	// Invisible to readers.
	if data, serial, err := s.Load(1); err != nil || string(data) != "base" || serial != base {
		t.Fatalf("Load = %q %s %v while the gate holds %s", data, serial, err, t1)
	}
	if _, ok, err := s.LoadBefore(1, t1+1); err != nil || !ok {
		t.Fatalf("LoadBefore: %v %v", ok, err)
	}
	if s.LastTransaction() != base {
		t.Fatalf("LastTransaction = %s, want %s", s.LastTransaction(), base)
	}
	if h, err := s.History(1, 10); err != nil || len(h) != 1 {
		t.Fatalf("History = %v %v, want only the base revision", h, err)
	}
	if _, err := s.TxnAt(t1); !errors.Is(err, ErrNoTransaction) {
		t.Fatalf("TxnAt(held) = %v", err)
	}
	it, _ := s.Iterate(0, 0)
	if got := iterTids(t, it); !tidsEqual(got, []Tid{base}) {
		t.Fatalf("Iterate = %v", got)
	}
	// Visible to the durable iterator, and to writers' conflict checks.
	dit, _ := s.IterateDurable(0)
	if got := iterTids(t, dit); !tidsEqual(got, []Tid{base, t1}) {
		t.Fatalf("IterateDurable = %v", got)
	}
	if s.LastDurable() != t1 {
		t.Fatalf("LastDurable = %s, want %s", s.LastDurable(), t1)
	}

	// Later commits proceed (they conflict-check against t1, fsync)
	// while the gate blocks; the gate is not called again meanwhile.
	t2, fin2 := commitAsync(t, s, 1, t1, "two")
	t3, fin3 := commitAsync(t, s, 2, 0, "three")
	waitDurable := time.Now().Add(5 * time.Second)
	for s.LastDurable() != t3 {
		if time.Now().After(waitDurable) {
			t.Fatal("later commits did not become durable while the gate blocked")
		}
		time.Sleep(time.Millisecond)
	}
	g.noCall(t)
	dit2, _ := s.IterateDurable(t2)
	if got := iterTids(t, dit2); !tidsEqual(got, []Tid{t2, t3}) {
		t.Fatalf("IterateDurable(t2) = %v", got)
	}
	// The resumed durable iterator continues where it stopped.
	if got := iterTids(t, dit); !tidsEqual(got, []Tid{t2, t3}) {
		t.Fatalf("IterateDurable continued = %v", got)
	}

	changed := s.Changed()
	g.answers <- nil
	if r := waitFinish(t, fin1); r.err != nil || r.tid != t1 {
		t.Fatalf("first finish = %v", r)
	}
	<-changed
	// The next call covers both later transactions.
	if got := g.nextCall(t); got != t3 {
		t.Fatalf("second gate call for %s, want %s (covering %s)", got, t3, t2)
	}
	notReturned(t, fin2)
	if s.LastTransaction() != t1 {
		t.Fatalf("LastTransaction = %s, want %s", s.LastTransaction(), t1)
	}
	g.answers <- nil
	for _, fin := range []<-chan finishResult{fin2, fin3} {
		if r := waitFinish(t, fin); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if data, serial, _ := s.Load(1); string(data) != "two" || serial != t2 {
		t.Fatalf("Load after release = %q %s", data, serial)
	}
	if s.LastTransaction() != t3 {
		t.Fatalf("LastTransaction = %s, want %s", s.LastTransaction(), t3)
	}
	g.noCall(t)
}

// TestGateRefusalKeepsTransactions: a refused transaction's TpcFinish
// fails with ErrNotAcknowledged, but the transaction stays on disk,
// invisible, and is published by the next successful gate call.
func TestGateRefusalKeepsTransactions(t *testing.T) {
	s := openTemp(t)
	g := newTestGate()
	s.SetCommitGate(g.gate)
	errNoAck := errors.New("no secondary")

	t1, fin1 := commitAsync(t, s, 1, 0, "one")
	if got := g.nextCall(t); got != t1 {
		t.Fatalf("gate called for %s, want %s", got, t1)
	}
	g.answers <- errNoAck
	r := waitFinish(t, fin1)
	if !errors.Is(r.err, ErrNotAcknowledged) || !errors.Is(r.err, errNoAck) {
		t.Fatalf("refused finish = %v, want ErrNotAcknowledged wrapping the gate's error", r.err)
	}
	if _, _, err := s.Load(1); !errors.Is(err, ErrNoObject) {
		t.Fatalf("refused transaction visible: %v", err)
	}
	if s.LastDurable() != t1 {
		t.Fatalf("refused transaction not durable: LastDurable = %s", s.LastDurable())
	}
	// The gate retries on its own; refuse once more.
	if got := g.nextCall(t); got != t1 {
		t.Fatalf("retry for %s, want %s", got, t1)
	}
	g.answers <- errNoAck

	// A new commit (conflict-checked against the refused one) covers it.
	t2, fin2 := commitAsync(t, s, 1, t1, "two")
	for {
		got := g.nextCall(t)
		if got == t2 {
			break
		}
		// A retry for t1 may have started just before; the new commit
		// interrupts it.
		if got != t1 {
			t.Fatalf("gate called for %s", got)
		}
	}
	g.answers <- nil
	if r := waitFinish(t, fin2); r.err != nil || r.tid != t2 {
		t.Fatalf("second finish = %v", r)
	}
	it, _ := s.Iterate(0, 0)
	if got := iterTids(t, it); !tidsEqual(got, []Tid{t1, t2}) {
		t.Fatalf("Iterate = %v, want both", got)
	}
	if data, _, _ := s.Load(1); string(data) != "two" {
		t.Fatalf("Load = %q", data)
	}
}

// TestGateRetryPublishesRefused: refused transactions with nobody waiting
// are published by a timed retry, or at once when the gate is removed.
func TestGateRetryPublishesRefused(t *testing.T) {
	s := openTemp(t)
	var mu sync.Mutex
	refuse := true
	s.SetCommitGate(func(ctx context.Context, tid Tid) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return errors.New("not yet")
		}
		return nil
	})
	t1, fin := commitAsync(t, s, 1, 0, "one")
	if r := waitFinish(t, fin); !errors.Is(r.err, ErrNotAcknowledged) {
		t.Fatalf("finish = %v", r.err)
	}
	time.Sleep(3 * gateRetryMin)
	if s.LastTransaction() != 0 {
		t.Fatal("published while the gate refuses")
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for s.LastTransaction() != t1 {
		if time.Now().After(deadline) {
			t.Fatal("the refused transaction was not published by a retry")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Removing a gate publishes what it refused.
	g := newTestGate()
	s.SetCommitGate(func(ctx context.Context, tid Tid) error { return errors.New("never") })
	t2, fin := commitAsync(t, s, 1, t1, "two")
	if r := waitFinish(t, fin); !errors.Is(r.err, ErrNotAcknowledged) {
		t.Fatalf("finish = %v", r.err)
	}
	s.SetCommitGate(nil)
	deadline = time.Now().Add(5 * time.Second)
	for s.LastTransaction() != t2 {
		if time.Now().After(deadline) {
			t.Fatal("removing the gate did not publish the refused transaction")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Ungated commits are published directly.
	commit(t, s, map[Oid]Tid{1: t2}, map[Oid][]byte{1: []byte("three")})
	g.noCall(t)
}

// TestGateCloseDoesNotHang: Close cancels a blocked gate; the waiting
// committer is told the outcome is unknown, and the transaction, durable,
// is there after reopening.
func TestGateCloseDoesNotHang(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := newTestGate()
	s.SetCommitGate(g.gate)
	t1, fin := commitAsync(t, s, 1, 0, "one")
	g.nextCall(t)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if !errors.Is(err, ErrNotAcknowledged) {
			t.Fatalf("Close = %v, want ErrNotAcknowledged for the unreleased transaction", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a blocked gate")
	}
	if r := waitFinish(t, fin); !errors.Is(r.err, ErrNotAcknowledged) {
		t.Fatalf("finish = %v", r.err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.LastTransaction() != t1 {
		t.Fatalf("after reopening, last = %s, want the durable %s", s.LastTransaction(), t1)
	}
	if data, _, err := s.Load(1); err != nil || string(data) != "one" {
		t.Fatalf("Load = %q %v", data, err)
	}
}

// TestIterateDurableResolvesBackpointers: a record pointing into a
// transaction that is durable but unpublished is resolved.
func TestIterateDurableResolvesBackpointers(t *testing.T) {
	s := openTemp(t)
	g := newTestGate()
	s.SetCommitGate(g.gate)
	t1, fin1 := commitAsync(t, s, 1, 0, "shared data")
	g.nextCall(t)
	txn, err := s.TpcBegin(context.Background(), TxnMeta{})
	if err != nil {
		t.Fatal(err)
	}
	// Undo-like restore: same data as t1's record, so a backpointer.
	if err := txn.Restore(1, txn.Tid(), []byte("shared data"), t1); err != nil {
		t.Fatal(err)
	}
	txn.TpcVote()
	fin2 := make(chan finishResult, 1)
	go func() { tid, err := txn.TpcFinish(); fin2 <- finishResult{tid, err} }()
	deadline := time.Now().Add(5 * time.Second)
	for s.LastDurable() != txn.Tid() {
		if time.Now().After(deadline) {
			t.Fatal("not durable")
		}
		time.Sleep(time.Millisecond)
	}
	it, _ := s.IterateDurable(txn.Tid())
	rec, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	d := rec.Records[0]
	if d.Back == 0 || string(d.Data) != "shared data" || d.DataTxn != t1 {
		t.Fatalf("record = back %d data %q data_txn %s", d.Back, d.Data, d.DataTxn)
	}
	g.answers <- nil
	g.nextCall(t)
	g.answers <- nil
	waitFinish(t, fin1)
	waitFinish(t, fin2)
}

// TestGateConcurrentCommits: with a gate that takes a while, every
// TpcFinish returns only after its transaction is visible, and the gate
// sees increasing tids.
func TestGateConcurrentCommits(t *testing.T) {
	s := openTemp(t)
	var mu sync.Mutex
	var calls []Tid
	s.SetCommitGate(func(ctx context.Context, tid Tid) error {
		mu.Lock()
		if n := len(calls); n > 0 && calls[n-1] >= tid {
			mu.Unlock()
			return fmt.Errorf("gate called for %s after %s", tid, calls[n-1])
		}
		calls = append(calls, tid)
		mu.Unlock()
		if s.LastTransaction() >= tid {
			return fmt.Errorf("%s published before the gate released it", tid)
		}
		time.Sleep(time.Duration(rand.Intn(2000)) * time.Microsecond)
		return nil
	})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var serial Tid
			for i := 0; i < 20; i++ {
				txn, err := s.TpcBegin(context.Background(), TxnMeta{})
				if err != nil {
					t.Error(err)
					return
				}
				txn.Store(Oid(w), serial, []byte{byte(i)})
				txn.TpcVote()
				tid, err := txn.TpcFinish()
				if err != nil {
					t.Error(err)
					return
				}
				if s.LastTransaction() < tid {
					t.Errorf("TpcFinish(%s) returned before publication", tid)
				}
				if _, got, _ := s.Load(Oid(w)); got != tid {
					t.Errorf("Load after TpcFinish = %s, want %s", got, tid)
				}
				serial = tid
			}
		}(w)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(calls) == 0 || len(calls) > 160 {
		t.Fatalf("%d gate calls", len(calls))
	}
	t.Logf("%d gate calls for 160 commits", len(calls))
}

// TestFlushWaitsForGate: Flush of queued transactions reports the gate's
// refusal.
func TestFlushWaitsForGate(t *testing.T) {
	s := openTemp(t)
	s.SetCommitGate(func(ctx context.Context, tid Tid) error { return errors.New("refused") })
	txn, _ := s.TpcBegin(context.Background(), TxnMeta{})
	txn.Store(1, 0, []byte("x"))
	txn.TpcVote()
	if _, err := txn.TpcFinishQueued(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); !errors.Is(err, ErrNotAcknowledged) {
		t.Fatalf("Flush = %v", err)
	}
	s.SetCommitGate(nil)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if s.LastTransaction() != txn.Tid() {
		t.Fatal("not published after the gate was removed")
	}
}
