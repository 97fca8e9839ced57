package node

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// TestTransactionTimeoutReleasesCommitLock: a client that votes and then
// goes silent holds the commit lock only until the transaction timeout;
// its connection is closed and others commit.
func TestTransactionTimeoutReleasesCommitLock(t *testing.T) {
	store, err := storage.Open(filepath.Join(t.TempDir(), "Data.fs"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	svc, err := NewZEOService(ZEOServiceConfig{Storage: store, TransactionTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	// The silent client, speaking the protocol by hand.
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fr := zeo.NewFrameReader(nc, 0)
	codec := zeo.PickleCodec{}
	send := func(m zeo.Message) {
		t.Helper()
		f, err := codec.EncodeFrame(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fr.ReadFrame(); err != nil { // announcement
		t.Fatal(err)
	}
	nc.Write(zeo.EncodeFrame([]byte("Z5")))
	send(zeo.NewCall(1, "register", "1", false))
	send(zeo.NewAsync("tpc_begin", int64(7), []byte(""), []byte(""), zeo.NewDict(), nil, " "))
	send(zeo.NewAsync("storea", storage.Oid(0).Bytes(), storage.Tid(0).Bytes(), []byte("silent"), int64(7)))
	send(zeo.NewCall(2, "vote", int64(7)))
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for replies := 0; replies < 2; {
		p, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for the vote: %v", err)
		}
		m, err := codec.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		if m.IsReply() {
			if m.IsError() {
				t.Fatalf("error reply %v", m)
			}
			replies++
		}
	}
	// The lock is held now; another client's commit must still succeed.
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	c, err := client.Dial(cctx, ln.Addr().String(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	txn := c.Begin(client.TxnMeta{})
	txn.Store(1, 0, []byte("other"))
	if _, err := txn.Commit(cctx); err != nil {
		t.Fatalf("commit while a silent client held the lock: %v", err)
	}
	if _, err := fr.ReadFrame(); err == nil {
		t.Fatal("the silent client's connection is still open")
	}
	if _, _, err := store.Load(0); err == nil {
		t.Fatal("the silent client's transaction was committed")
	}
}
