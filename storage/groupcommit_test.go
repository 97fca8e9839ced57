package storage

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// TestGroupCommitKeepsConflictsAndOrder increments one counter from many
// goroutines. With transactions finishing concurrently, a writer must
// still conflict with a transaction that is finished but not yet
// published, or increments would be lost.
func TestGroupCommitKeepsConflictsAndOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 25
	commitOne := func(oid Oid, serial Tid, data []byte) (Tid, error) {
		tx, err := s.TpcBegin(context.Background(), TxnMeta{})
		if err != nil {
			return 0, err
		}
		if err := tx.Store(oid, serial, data); err != nil {
			tx.TpcAbort()
			return 0, err
		}
		if err := tx.TpcVote(); err != nil {
			tx.TpcAbort()
			return 0, err
		}
		return tx.TpcFinish()
	}
	if _, err := commitOne(1, 0, []byte("0")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var tids []Tid
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for done := 0; done < each; {
				// Each worker also writes an object of its own, so
				// transactions overlap without conflicting too.
				if _, err := commitOne(Oid(100+w), 0, []byte("x")); err != nil && !errors.Is(err, ErrConflict) {
					t.Error(err)
					return
				}
				data, serial, err := s.Load(1)
				if err != nil {
					t.Error(err)
					return
				}
				n, _ := strconv.Atoi(string(data))
				tid, err := commitOne(1, serial, []byte(strconv.Itoa(n+1)))
				if errors.Is(err, ErrConflict) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				tids = append(tids, tid)
				mu.Unlock()
				done++
			}
		}(w)
	}
	wg.Wait()
	data, _, err := s.Load(1)
	if err != nil || string(data) != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %q %v, want %d: increments were lost", data, err, workers*each)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Everything acknowledged is in the file, in tid order.
	rep, err := Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Transactions < 1+workers*each {
		t.Fatalf("%d transactions in the file, want at least %d", rep.Transactions, 1+workers*each)
	}
}

// BenchmarkCommitParallel measures commits of one 100-byte object from
// many goroutines, where group commit shares fsyncs.
func BenchmarkCommitParallel(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "Data.fs"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 100)
	var next sync.Mutex
	oid := Oid(0)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		next.Lock()
		oid++
		mine := oid
		next.Unlock()
		var serial Tid
		for pb.Next() {
			tx, err := s.TpcBegin(context.Background(), TxnMeta{})
			if err != nil {
				b.Fatal(err)
			}
			if err := tx.Store(mine, serial, data); err != nil {
				b.Fatal(err)
			}
			if err := tx.TpcVote(); err != nil {
				b.Fatal(err)
			}
			if serial, err = tx.TpcFinish(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestQueuedFinishReplaysByteIdentical applies every transaction of the
// fixtures without waiting for durability, flushing once at the end, as
// a replica catching up does; backpointers into transactions that are
// still queued must be found, so the copy is byte-identical.
func TestQueuedFinishReplaysByteIdentical(t *testing.T) {
	for _, name := range []string{"basic.fs", "many.fs"} {
		src, err := Open(fxCopy(t, name, t.TempDir(), name), Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		dstPath := filepath.Join(t.TempDir(), "copy.fs")
		dst, err := Open(dstPath, Options{})
		if err != nil {
			t.Fatal(err)
		}
		it, err := src.Iterate(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for {
			rec, err := it.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			tx, err := dst.TpcBegin(context.Background(), TxnMeta{User: rec.User, Description: rec.Description,
				Extension: rec.Extension, Tid: rec.Tid, Status: rec.Status})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rec.Records {
				if err := tx.Restore(r.Oid, r.Tid, r.Data, r.DataTxn); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.TpcVote(); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.TpcFinishQueued(nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := dst.Flush(); err != nil {
			t.Fatal(err)
		}
		if dst.LastTransaction() != src.LastTransaction() {
			t.Fatalf("%s: last tid %s after flush, want %s", name, dst.LastTransaction(), src.LastTransaction())
		}
		src.Close()
		dst.Close()
		got, err := os.ReadFile(dstPath)
		if err != nil {
			t.Fatal(err)
		}
		fxCompareBytes(t, name, got, fxRead(t, name))
	}
}
