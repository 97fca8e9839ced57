package storage

import (
	"context"
	"testing"
	"time"
)

// queueTxn finishes a transaction writing oid → data with TpcFinishQueued,
// as a replica does, and returns its tid.
func queueTxn(t *testing.T, s *FileStorage, oid Oid, serial Tid, data string) Tid {
	t.Helper()
	txn, err := s.TpcBegin(context.Background(), TxnMeta{User: []byte("replica")})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(oid, serial, []byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := txn.TpcVote(); err != nil {
		t.Fatal(err)
	}
	tid, err := txn.TpcFinishQueued(nil)
	if err != nil {
		t.Fatal(err)
	}
	return tid
}

// TestFlushDurableDoesNotWaitForGate: FlushDurable returns once queued
// transactions are durable while the gate still holds them; they become
// visible when the gate releases them.
func TestFlushDurableDoesNotWaitForGate(t *testing.T) {
	s := openTemp(t)
	base := commit(t, s, nil, map[Oid][]byte{1: []byte("base")})
	g := newTestGate()
	s.SetCommitGate(g.gate)

	t1 := queueTxn(t, s, 1, base, "one")
	t2 := queueTxn(t, s, 2, 0, "two")
	done := make(chan error, 1)
	go func() { done <- s.FlushDurable() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("FlushDurable waited for the gate")
	}
	if s.LastDurable() != t2 {
		t.Fatalf("LastDurable = %s, want %s", s.LastDurable(), t2)
	}
	if s.LastTransaction() != base {
		t.Fatalf("LastTransaction = %s while the gate holds %s and %s, want %s", s.LastTransaction(), t1, t2, base)
	}
	if data, _, err := s.Load(1); err != nil || string(data) != "base" {
		t.Fatalf("Load = %q %v while the gate holds %s", data, err, t1)
	}
	// The publisher asks the gate about the whole durable batch.
	if got := g.nextCall(t); got != t2 {
		t.Fatalf("gate called for %s, want %s", got, t2)
	}

	changed := s.Changed()
	g.answers <- nil
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("not published after the gate released")
	}
	if s.LastTransaction() != t2 {
		t.Fatalf("LastTransaction = %s after the release, want %s", s.LastTransaction(), t2)
	}
	if data, serial, err := s.Load(1); err != nil || string(data) != "one" || serial != t1 {
		t.Fatalf("Load after the release = %q %s %v", data, serial, err)
	}
	g.noCall(t)
}

// TestFlushDurableWithoutGate: without a gate FlushDurable publishes
// before it returns, like Flush.
func TestFlushDurableWithoutGate(t *testing.T) {
	s := openTemp(t)
	tid := queueTxn(t, s, 1, 0, "x")
	if err := s.FlushDurable(); err != nil {
		t.Fatal(err)
	}
	if s.LastTransaction() != tid || s.LastDurable() != tid {
		t.Fatalf("LastTransaction %s, LastDurable %s, want both %s", s.LastTransaction(), s.LastDurable(), tid)
	}
	// Nothing queued: a no-op.
	if err := s.FlushDurable(); err != nil {
		t.Fatal(err)
	}
}
