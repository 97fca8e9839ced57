package storage

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestUndoReproducesZODB redoes the two undo transactions of basic.fs on
// a copy cut just before each, and expects the very bytes ZODB wrote.
func TestUndoReproducesZODB(t *testing.T) {
	var meta struct {
		Transactions []struct {
			Tid          string `json:"tid"`
			Pos          int64  `json:"pos"`
			EndPos       int64  `json:"end_pos"`
			UserHex      string `json:"user_hex"`
			DescHex      string `json:"description_hex"`
			ExtensionHex string `json:"extension_hex"`
		} `json:"transactions"`
	}
	fxLoadJSON(t, "basic.json", &meta)
	full := fxRead(t, "basic.fs")
	for _, c := range []struct{ undo, undone int }{{14, 12}, {16, 15}} {
		txn := meta.Transactions[c.undo]
		dir := t.TempDir()
		path := fxWrite(t, dir, "Data.fs", full[:txn.Pos])
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := s.TpcBegin(context.Background(), TxnMeta{
			User: fxHex(t, txn.UserHex), Description: fxHex(t, txn.DescHex), Extension: fxHex(t, txn.ExtensionHex),
			Tid: fxTid(t, txn.Tid),
		})
		if err != nil {
			t.Fatal(err)
		}
		id := base64.StdEncoding.EncodeToString(fxTid(t, meta.Transactions[c.undone].Tid).Bytes())
		oids, err := tx.Undo([]byte(id))
		if err != nil {
			t.Fatalf("undo of txn %d: %v", c.undone, err)
		}
		if len(oids) == 0 {
			t.Fatalf("undo of txn %d changed no objects", c.undone)
		}
		if err := tx.TpcVote(); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.TpcFinish(); err != nil {
			t.Fatal(err)
		}
		s.Close()
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fxCompareBytes(t, "file after undo", got, full[:txn.EndPos+8])
	}
}

func TestUndoRefusesLaterChanges(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "Data.fs"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commitOne := func(oid Oid, serial Tid, data string) Tid {
		tx, err := s.TpcBegin(context.Background(), TxnMeta{})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Store(oid, serial, []byte(data)); err != nil {
			t.Fatal(err)
		}
		tx.TpcVote()
		tid, err := tx.TpcFinish()
		if err != nil {
			t.Fatal(err)
		}
		return tid
	}
	t1 := commitOne(1, 0, "a")
	t2 := commitOne(1, t1, "b")
	commitOne(1, t2, "c")
	tx, _ := s.TpcBegin(context.Background(), TxnMeta{})
	defer tx.TpcAbort()
	_, err = tx.Undo([]byte(base64.StdEncoding.EncodeToString(t2.Bytes())))
	var ue *UndoError
	if !errors.As(err, &ue) || len(ue.Oids) != 1 || ue.Oids[0] != 1 {
		t.Fatalf("undo of an overwritten change: %v", err)
	}
	if _, err := tx.Undo([]byte("not base64!")); !errors.Is(err, ErrUndo) {
		t.Fatalf("undo with a bad id: %v", err)
	}
}

func TestCountAfter(t *testing.T) {
	s, err := Open(fxCopy(t, "basic.fs", t.TempDir(), "basic.fs"), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var meta struct {
		Transactions []struct {
			Tid string `json:"tid"`
		} `json:"transactions"`
	}
	fxLoadJSON(t, "basic.json", &meta)
	n := len(meta.Transactions)
	for i, txn := range meta.Transactions {
		got, err := s.CountAfter(fxTid(t, txn.Tid))
		if err != nil || got != n-1-i {
			t.Fatalf("CountAfter(%s) = %d, %v; want %d", txn.Tid, got, err, n-1-i)
		}
	}
	if got, _ := s.CountAfter(0); got != n {
		t.Fatalf("CountAfter(0) = %d, want %d", got, n)
	}
}
