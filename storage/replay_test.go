package storage

// Replay: copying every transaction of a ZODB-written file with
// TpcBegin(tid, status) + Restore must reproduce the file byte for byte,
// and the .index written on Close must be byte-identical to ZODB's.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestReplayFixtures(t *testing.T) {
	for _, fs := range fxFixtureNames {
		t.Run(fs, func(t *testing.T) {
			want := fxRead(t, fs)
			wantIndex := fxReplayExpectedIndex(t, fs)

			src := fxOpenFixture(t, fs, true, false)
			dir := t.TempDir()
			dstPath := filepath.Join(dir, "replay.fs")
			dst, err := Open(dstPath, Options{})
			if err != nil {
				t.Fatalf("Open new file: %v", err)
			}
			defer dst.Close()

			it, err := src.Iterate(0, 0)
			if err != nil {
				t.Fatalf("Iterate: %v", err)
			}
			n := 0
			for {
				rec, err := it.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("source Next after %d transactions: %v", n, err)
				}
				n++
				fxReplayTxn(t, dst, rec)
			}
			if got := dst.LastTransaction(); got != src.LastTransaction() {
				t.Errorf("replayed LastTransaction() = %s, source %s", got, src.LastTransaction())
			}
			if got := dst.Size(); got != int64(len(want)) {
				t.Errorf("replayed Size() = %d, fixture is %d bytes", got, len(want))
			}
			if err := dst.Close(); err != nil {
				t.Fatalf("Close replayed storage: %v", err)
			}
			got, err := os.ReadFile(dstPath)
			if err != nil {
				t.Fatal(err)
			}
			fxCompareBytes(t, fmt.Sprintf("replayed %s (%d transactions)", fs, n), got, want)
			gotIndex, err := os.ReadFile(dstPath + ".index")
			if err != nil {
				t.Fatalf("Close wrote no index: %v", err)
			}
			fxCompareBytes(t, "replayed "+fs+".index", gotIndex, wantIndex)
		})
	}
}

// fxReplayTxn copies one transaction into dst.
func fxReplayTxn(t *testing.T, dst *FileStorage, rec *TxnRecord) {
	t.Helper()
	txn, err := dst.TpcBegin(context.Background(), TxnMeta{
		User:        rec.User,
		Description: rec.Description,
		Extension:   rec.Extension,
		Tid:         rec.Tid,
		Status:      rec.Status,
	})
	if err != nil {
		t.Fatalf("TpcBegin(txn %s): %v", rec.Tid, err)
	}
	for _, r := range rec.Records {
		if err := txn.Restore(r.Oid, r.Tid, r.Data, r.DataTxn); err != nil {
			txn.TpcAbort()
			t.Fatalf("Restore(oid %s, tid %s, data_txn %s) in txn %s: %v", r.Oid, r.Tid, r.DataTxn, rec.Tid, err)
		}
	}
	if err := txn.TpcVote(); err != nil {
		txn.TpcAbort()
		t.Fatalf("TpcVote(txn %s): %v", rec.Tid, err)
	}
	tid, err := txn.TpcFinish()
	if err != nil {
		t.Fatalf("TpcFinish(txn %s): %v", rec.Tid, err)
	}
	if tid != rec.Tid {
		t.Fatalf("TpcFinish returned tid %s, replaying %s", tid, rec.Tid)
	}
}

// fxReplayExpectedIndex returns ZODB's .index for fs when the fixtures
// have one; otherwise the index our Open writes for a copy of the fixture
// (TestFixtureOpen checks that this index equals ZODB's where ZODB's is
// known).
func fxReplayExpectedIndex(t *testing.T, fs string) []byte {
	t.Helper()
	if fxExists(t, fs+".index") {
		return fxRead(t, fs+".index")
	}
	dir := t.TempDir()
	path := fxCopy(t, fs, dir, fs)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", fs, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close(%s): %v", fs, err)
	}
	b, err := os.ReadFile(path + ".index")
	if errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open/Close of %s wrote no .index", fs)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}
