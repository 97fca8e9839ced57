package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// voteOne begins a transaction, stores each oid → data on serial 0 (or the
// given serial) and votes.
func voteOne(t *testing.T, s *FileStorage, serials map[Oid]Tid, data map[Oid]string) *Txn {
	t.Helper()
	txn, err := s.TpcBegin(context.Background(), TxnMeta{User: []byte("u"), Description: []byte("pipelined")})
	if err != nil {
		t.Fatal(err)
	}
	for oid, d := range data {
		if err := txn.Store(oid, serials[oid], []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.TpcVote(); err != nil {
		t.Fatal(err)
	}
	return txn
}

// finishAsync finishes txn in the background (waitFinish and notReturned
// read the outcome).
func finishAsync(txn *Txn) <-chan finishResult {
	out := make(chan finishResult, 1)
	go func() {
		tid, err := txn.TpcFinish()
		out <- finishResult{tid, err}
	}()
	return out
}

// finished fails unless the finish behind ch succeeds.
func finished(t *testing.T, ch <-chan finishResult) {
	t.Helper()
	if r := waitFinish(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
}

// reopenAndCheck closes s, checks the file like fstest, and reopens it
// with its index removed, so that positions are rebuilt from the file.
func reopenAndCheck(t *testing.T, s *FileStorage) *FileStorage {
	t.Helper()
	path := s.path
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(path); err != nil {
		t.Fatalf("check after pipelined commits: %v", err)
	}
	if err := os.Remove(path + ".index"); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestVoteReleasesTheCommitLock(t *testing.T) {
	s := openTemp(t)
	t1 := voteOne(t, s, nil, map[Oid]string{1: "one"})
	// The next transaction begins and votes while t1 waits for its finish.
	t2 := voteOne(t, s, nil, map[Oid]string{2: "two"})
	if t2.Tid() <= t1.Tid() {
		t.Fatalf("t2's tid %s is not after t1's %s", t2.Tid(), t1.Tid())
	}
	done2 := finishAsync(t2)
	notReturned(t, done2)
	if _, _, err := s.Load(2); !errors.Is(err, ErrNoObject) {
		t.Fatalf("t2's object is visible before t1 is decided: %v", err)
	}
	if _, err := t1.TpcFinish(); err != nil {
		t.Fatal(err)
	}
	finished(t, done2)
	if s.LastTransaction() != t2.Tid() {
		t.Fatalf("last transaction %s, want %s", s.LastTransaction(), t2.Tid())
	}
	r := reopenAndCheck(t, s)
	for oid, want := range map[Oid]string{1: "one", 2: "two"} {
		if data, _, err := r.Load(oid); err != nil || string(data) != want {
			t.Fatalf("load %s = %q %v, want %q", oid, data, err, want)
		}
	}
}

// An undecided transaction that aborts is cut off; the ones voted behind
// it move down and the file is as if it had never voted.
func TestAbortedVoteMovesLaterOnesDown(t *testing.T) {
	s := openTemp(t)
	base := commit(t, s, nil, map[Oid][]byte{9: []byte("base")})
	t1 := voteOne(t, s, nil, map[Oid]string{1: "aborted"})
	t2 := voteOne(t, s, map[Oid]Tid{9: base}, map[Oid]string{2: "two", 9: "base changed"})
	t3 := voteOne(t, s, nil, map[Oid]string{3: "three"})
	done3 := finishAsync(t3)
	done2 := finishAsync(t2)
	notReturned(t, done2)
	t1.TpcAbort()
	finished(t, done2)
	finished(t, done3)
	if _, _, err := s.Load(1); !errors.Is(err, ErrNoObject) {
		t.Fatalf("the aborted transaction's object exists: %v", err)
	}
	// The file holds base, t2 and t3 back to back.
	want := int64(4)
	for _, tid := range []Tid{base, t2.Tid(), t3.Tid()} {
		h, err := s.readTxnHeader(want)
		if err != nil || h.Tid != tid {
			t.Fatalf("transaction at %d: %v %v, want %s", want, h, err, tid)
		}
		want += int64(h.Len) + trailerSize
	}
	if s.Size() != want {
		t.Fatalf("size %d, want %d", s.Size(), want)
	}
	r := reopenAndCheck(t, s)
	for oid, want := range map[Oid]string{2: "two", 3: "three", 9: "base changed"} {
		if data, _, err := r.Load(oid); err != nil || string(data) != want {
			t.Fatalf("load %s = %q %v, want %q", oid, data, err, want)
		}
	}
	hist, err := r.History(9, 10)
	if err != nil || len(hist) != 2 || hist[0].Tid != t2.Tid() || hist[1].Tid != base {
		t.Fatalf("history of 9 = %v %v", hist, err)
	}
}

// A transaction writing an object that an undecided one writes waits for
// that decision, then sees it: a conflict if it committed.
func TestVoteOfTheSameObjectWaitsForTheDecision(t *testing.T) {
	for _, commitFirst := range []bool{true, false} {
		name := map[bool]string{true: "first commits", false: "first aborts"}[commitFirst]
		t.Run(name, func(t *testing.T) {
			s := openTemp(t)
			base := commit(t, s, nil, map[Oid][]byte{1: []byte("base")})
			t1 := voteOne(t, s, map[Oid]Tid{1: base}, map[Oid]string{1: "first"})
			t2, err := s.TpcBegin(context.Background(), TxnMeta{})
			if err != nil {
				t.Fatal(err)
			}
			stored := make(chan error, 1)
			go func() { stored <- t2.Store(1, base, []byte("second")) }()
			select {
			case err := <-stored:
				t.Fatalf("the second store of the object returned (%v) before the first transaction was decided", err)
			case <-time.After(50 * time.Millisecond):
			}
			if commitFirst {
				if _, err := t1.TpcFinish(); err != nil {
					t.Fatal(err)
				}
				var ce *ConflictError
				if err := <-stored; !errors.As(err, &ce) || ce.Committed != t1.Tid() {
					t.Fatalf("second store after the first committed: %v, want a conflict with %s", err, t1.Tid())
				}
				t2.TpcAbort()
				return
			}
			t1.TpcAbort()
			if err := <-stored; err != nil {
				t.Fatalf("second store after the first aborted: %v", err)
			}
			if err := t2.TpcVote(); err != nil {
				t.Fatal(err)
			}
			if _, err := t2.TpcFinish(); err != nil {
				t.Fatal(err)
			}
			r := reopenAndCheck(t, s)
			if data, _, err := r.Load(1); err != nil || string(data) != "second" {
				t.Fatalf("load 1 = %q %v", data, err)
			}
		})
	}
}

// A crash while a transaction waits behind an undecided one leaves only
// the undecided one in the file, which the next open cuts off; the
// waiting one was never written, so was never acknowledged.
func TestCrashWithUndecidedVotes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := commit(t, s, nil, map[Oid][]byte{1: []byte("base")})
	voteOne(t, s, nil, map[Oid]string{2: "undecided"})
	t2 := voteOne(t, s, nil, map[Oid]string{3: "behind"})
	finishAsync(t2)
	time.Sleep(20 * time.Millisecond)
	// Copy the file as a crash now would leave it.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(dir, "crashed.fs")
	if err := os.WriteFile(crashed, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(crashed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.LastTransaction() != base {
		t.Fatalf("after the crash the last transaction is %s, want %s", r.LastTransaction(), base)
	}
	s.Close()
}

// Close aborts voted transactions still waiting for their finish.
func TestCloseAbortsQueuedVotes(t *testing.T) {
	s := openTemp(t)
	t1 := voteOne(t, s, nil, map[Oid]string{1: "one"})
	t2 := voteOne(t, s, nil, map[Oid]string{2: "two"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i, txn := range []*Txn{t1, t2} {
		if _, err := txn.TpcFinish(); err == nil {
			t.Fatalf("finish of voted transaction %d succeeded after Close", i+1)
		}
	}
}
