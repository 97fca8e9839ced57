package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openTemp(t *testing.T) *FileStorage {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "Data.fs"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// commit stores each oid → data based on the given serials.
func commit(t *testing.T, s *FileStorage, serials map[Oid]Tid, data map[Oid][]byte) Tid {
	t.Helper()
	txn, err := s.TpcBegin(context.Background(), TxnMeta{User: []byte("u"), Description: []byte("d")})
	if err != nil {
		t.Fatal(err)
	}
	for oid, d := range data {
		if err := txn.Store(oid, serials[oid], d); err != nil {
			txn.TpcAbort()
			t.Fatal(err)
		}
	}
	if err := txn.TpcVote(); err != nil {
		t.Fatal(err)
	}
	tid, err := txn.TpcFinish()
	if err != nil {
		t.Fatal(err)
	}
	return tid
}

func TestCommitThenLoad(t *testing.T) {
	s := openTemp(t)
	if s.LastTransaction() != 0 || s.Size() != 4 {
		t.Fatalf("empty storage: last %s size %d", s.LastTransaction(), s.Size())
	}
	tid1 := commit(t, s, nil, map[Oid][]byte{0: []byte("root v1")})
	tid2 := commit(t, s, map[Oid]Tid{0: tid1}, map[Oid][]byte{0: []byte("root v2")})
	if tid2 <= tid1 || s.LastTransaction() != tid2 {
		t.Fatalf("tids %s %s last %s", tid1, tid2, s.LastTransaction())
	}
	data, serial, err := s.Load(0)
	if err != nil || string(data) != "root v2" || serial != tid2 {
		t.Fatalf("Load = %q %s %v", data, serial, err)
	}
	rev, ok, err := s.LoadBefore(0, tid2)
	if err != nil || !ok || string(rev.Data) != "root v1" || rev.Tid != tid1 || rev.NextTid != tid2 {
		t.Fatalf("LoadBefore = %+v %v %v", rev, ok, err)
	}
	if _, ok, err := s.LoadBefore(0, tid1); ok || err != nil {
		t.Fatalf("LoadBefore(first tid) = %v %v, want no revision", ok, err)
	}
	if _, _, err := s.Load(7); !errors.Is(err, ErrNoObject) {
		t.Fatalf("Load(unknown) error = %v", err)
	}
}

func TestStoreConflict(t *testing.T) {
	s := openTemp(t)
	tid1 := commit(t, s, nil, map[Oid][]byte{1: []byte("a")})
	commit(t, s, map[Oid]Tid{1: tid1}, map[Oid][]byte{1: []byte("b")})
	txn, err := s.TpcBegin(context.Background(), TxnMeta{})
	if err != nil {
		t.Fatal(err)
	}
	defer txn.TpcAbort()
	err = txn.Store(1, tid1, []byte("stale"))
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Oid != 1 || ce.Given != tid1 || ce.Committed != s.LastTransaction() {
		t.Fatalf("Store with stale serial: %v", err)
	}
	err = txn.CheckCurrentSerial(1, tid1)
	if !errors.As(err, &ce) || !ce.Read {
		t.Fatalf("CheckCurrentSerial with stale serial: %v", err)
	}
}

func TestAbortAfterVoteLeavesFileUnchanged(t *testing.T) {
	s := openTemp(t)
	commit(t, s, nil, map[Oid][]byte{0: []byte("x")})
	size := s.Size()
	txn, _ := s.TpcBegin(context.Background(), TxnMeta{})
	if err := txn.Store(5, 0, []byte("never")); err != nil {
		t.Fatal(err)
	}
	if err := txn.TpcVote(); err != nil {
		t.Fatal(err)
	}
	txn.TpcAbort()
	fi, err := os.Stat(s.Path())
	if err != nil || fi.Size() != size {
		t.Fatalf("file size after abort %d, want %d (%v)", fi.Size(), size, err)
	}
	if _, _, err := s.Load(5); !errors.Is(err, ErrNoObject) {
		t.Fatalf("aborted object loadable: %v", err)
	}
	// The storage still commits after an abort.
	commit(t, s, nil, map[Oid][]byte{6: []byte("y")})
}

func TestVotedTransactionInvisibleUntilFinish(t *testing.T) {
	s := openTemp(t)
	tid1 := commit(t, s, nil, map[Oid][]byte{0: []byte("v1")})
	txn, _ := s.TpcBegin(context.Background(), TxnMeta{})
	if err := txn.Store(0, tid1, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := txn.TpcVote(); err != nil {
		t.Fatal(err)
	}
	// Readers neither block nor see the voted data.
	if data, _, _ := s.Load(0); string(data) != "v1" {
		t.Fatalf("Load during commit = %q", data)
	}
	if s.LastTransaction() != tid1 {
		t.Fatal("LastTransaction moved before finish")
	}
	changed := s.Changed()
	tid2, err := txn.TpcFinish()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed not signalled by finish")
	}
	if data, serial, _ := s.Load(0); string(data) != "v2" || serial != tid2 {
		t.Fatalf("Load after finish = %q %s", data, serial)
	}
}

func TestCommitLockSerializesAndHonoursContext(t *testing.T) {
	s := openTemp(t)
	txn, _ := s.TpcBegin(context.Background(), TxnMeta{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.TpcBegin(ctx, TxnMeta{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second TpcBegin while locked: %v", err)
	}
	txn.TpcAbort()

	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				txn, err := s.TpcBegin(context.Background(), TxnMeta{})
				if err != nil {
					t.Error(err)
					return
				}
				if err := txn.Store(Oid(100+g), 0, []byte{byte(i)}); err != nil {
					txn.TpcAbort()
					continue // conflicts are expected: serial 0 for an existing object
				}
				if err := txn.TpcVote(); err != nil {
					t.Error(err)
				}
				if _, err := txn.TpcFinish(); err != nil {
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
	it, err := s.Iterate(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var last Tid
	for {
		rec, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Tid <= last {
			t.Fatalf("tids not increasing: %s after %s", rec.Tid, last)
		}
		last = rec.Tid
	}
}

func TestReopenKeepsDataAndOids(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	oids, _ := s.NewOids(3)
	txn, _ := s.TpcBegin(context.Background(), TxnMeta{Extension: []byte("\x80\x03}q\x00.")})
	for _, oid := range oids {
		if err := txn.Store(oid, 0, bytes.Repeat([]byte{byte(oid)}, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.DeleteObject(oids[0], 0); err == nil {
		t.Fatal("DeleteObject of an uncommitted object succeeded")
	}
	txn.TpcVote()
	tid, _ := txn.TpcFinish()
	if _, err := Open(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open while locked: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, withIndex := range []bool{true, false} {
		if !withIndex {
			os.Remove(path + ".index")
		}
		s, err = Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if s.LastTransaction() != tid || s.Len() != 3 {
			t.Fatalf("reopen (index %v): last %s len %d", withIndex, s.LastTransaction(), s.Len())
		}
		next, _ := s.NewOids(1)
		if next[0] != oids[2]+1 {
			t.Fatalf("NewOids after reopen = %s, want %s", next[0], oids[2]+1)
		}
		s.Close()
	}
}

func TestDeleteObject(t *testing.T) {
	s := openTemp(t)
	tid1 := commit(t, s, nil, map[Oid][]byte{3: []byte("x")})
	txn, _ := s.TpcBegin(context.Background(), TxnMeta{})
	if err := txn.DeleteObject(3, tid1); err != nil {
		t.Fatal(err)
	}
	txn.TpcVote()
	tid2, _ := txn.TpcFinish()
	var nerr *NoObjectError
	if _, _, err := s.Load(3); !errors.As(err, &nerr) || !nerr.Deleted {
		t.Fatalf("Load deleted: %v", err)
	}
	if _, _, err := s.LoadBefore(3, MaxTid); !errors.Is(err, ErrNoObject) {
		t.Fatalf("LoadBefore deleted: %v", err)
	}
	if rev, ok, err := s.LoadBefore(3, tid2); err != nil || !ok || string(rev.Data) != "x" {
		t.Fatalf("LoadBefore before deletion: %+v %v %v", rev, ok, err)
	}
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	s, _ := Open(path, Options{})
	commit(t, s, nil, map[Oid][]byte{0: []byte("x")})
	s.Close()
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.TpcBegin(context.Background(), TxnMeta{}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("TpcBegin read-only: %v", err)
	}
	if _, err := ro.NewOids(1); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("NewOids read-only: %v", err)
	}
	if data, _, err := ro.Load(0); err != nil || string(data) != "x" {
		t.Fatalf("Load read-only: %q %v", data, err)
	}
}

func TestIteratorSeesLaterCommitsAndStartsAnywhere(t *testing.T) {
	s := openTemp(t)
	var tids []Tid
	for i := 0; i < 300; i++ {
		tids = append(tids, commit(t, s, nil, map[Oid][]byte{Oid(i): []byte("x")}))
	}
	for _, i := range []int{0, 1, 127, 128, 129, 200, 299} {
		it, err := s.Iterate(tids[i], 0)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := it.Next()
		if err != nil || rec.Tid != tids[i] {
			t.Fatalf("Iterate(%s) first = %v %v", tids[i], rec, err)
		}
		if _, err := s.findTxn(tids[i]); err != nil {
			t.Fatalf("findTxn(%s): %v", tids[i], err)
		}
	}
	it, _ := s.Iterate(tids[299]+1, 0)
	if _, err := it.Next(); err != io.EOF {
		t.Fatalf("iterator past the end: %v", err)
	}
	tid := commit(t, s, nil, map[Oid][]byte{1000: []byte("late")})
	rec, err := it.Next()
	if err != nil || rec.Tid != tid || len(rec.Records) != 1 || string(rec.Records[0].Data) != "late" {
		t.Fatalf("iterator after a later commit: %+v %v", rec, err)
	}
}
