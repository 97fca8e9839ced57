package client_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/node"
	"github.com/zrs-go/zrs/storage"
)

// server is a ZEO service on a temporary storage, on a loopback port.
type server struct {
	t      *testing.T
	path   string
	addr   string
	store  *storage.FileStorage
	svc    *node.ZEOService
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, path, addr, protocol string, readOnly bool) *server {
	t.Helper()
	store, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := node.NewZEOService(node.ZEOServiceConfig{Storage: store, Protocol: protocol, ReadOnly: readOnly})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond) // the previous server's port may linger
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{t: t, path: path, addr: ln.Addr().String(), store: store, svc: svc, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- svc.Serve(ctx, ln) }()
	t.Cleanup(s.stop)
	return s
}

func (s *server) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Error(err)
	}
	s.store.Close()
	s.cancel = nil
}

func dial(t *testing.T, addr string, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func commit(t *testing.T, c *client.Client, serial storage.Tid, oid storage.Oid, data string) storage.Tid {
	t.Helper()
	txn := c.Begin(client.TxnMeta{User: "test", Description: "commit", Extension: map[string]any{"k": "v"}})
	txn.Store(oid, serial, []byte(data))
	tid, err := txn.Commit(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return tid
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestCommitLoadAndInvalidate(t *testing.T) {
	for _, protocol := range []string{node.ProtocolPickle, node.ProtocolMsgpack} {
		t.Run(protocol, func(t *testing.T) {
			srv := startServer(t, filepath.Join(t.TempDir(), "Data.fs"), "127.0.0.1:0", protocol, false)
			var mu sync.Mutex
			var seen []client.Invalidation
			c1 := dial(t, srv.addr, client.Options{})
			c2 := dial(t, srv.addr, client.Options{OnInvalidate: func(inv client.Invalidation) {
				mu.Lock()
				seen = append(seen, inv)
				mu.Unlock()
			}})
			if _, _, err := c2.Load(ctx(t), 0); !errors.Is(err, storage.ErrNoObject) {
				t.Fatalf("load of a missing root: %v", err)
			}
			tid1 := commit(t, c1, 0, 0, "root v1")
			data, serial, err := c2.Load(ctx(t), 0)
			if err != nil || string(data) != "root v1" || serial != tid1 {
				t.Fatalf("c2 load = %q %s %v", data, serial, err)
			}
			tid2 := commit(t, c1, tid1, 0, "root v2")
			// c2 cached v1; the invalidation must make it load v2.
			deadline := time.Now().Add(5 * time.Second)
			for {
				data, serial, err = c2.Load(ctx(t), 0)
				if err != nil {
					t.Fatal(err)
				}
				if serial == tid2 || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if string(data) != "root v2" || serial != tid2 {
				t.Fatalf("after invalidation c2 load = %q %s", data, serial)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 0 || seen[len(seen)-1].Tid != tid2 {
				t.Fatalf("invalidations seen by c2: %+v", seen)
			}
			rev, ok, err := c2.LoadBefore(ctx(t), 0, tid2)
			if err != nil || !ok || string(rev.Data) != "root v1" || rev.NextTid != tid2 {
				t.Fatalf("LoadBefore = %+v %v %v", rev, ok, err)
			}
		})
	}
}

func TestConcurrentCommittersConflict(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "Data.fs"), "127.0.0.1:0", node.ProtocolPickle, false)
	c0 := dial(t, srv.addr, client.Options{})
	oids, err := c0.NewOids(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	counter := oids[0]
	commit(t, c0, 0, counter, "0")

	const workers, increments = 6, 15
	var wg sync.WaitGroup
	var conflicts, commits sync.Map
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := dial(t, srv.addr, client.Options{CacheBytes: -1})
			for done := 0; done < increments; {
				data, serial, err := c.Load(ctx(t), counter)
				if err != nil {
					t.Error(err)
					return
				}
				n := 0
				for _, ch := range data {
					n = n*10 + int(ch-'0')
				}
				txn := c.Begin(client.TxnMeta{})
				txn.Store(counter, serial, []byte(itoa(n+1)))
				tid, err := txn.Commit(ctx(t))
				var ce *storage.ConflictError
				switch {
				case errors.As(err, &ce):
					conflicts.Store(w*1000+done, true)
					continue
				case err != nil:
					t.Error(err)
					return
				}
				commits.Store(tid, true)
				done++
			}
		}(w)
	}
	wg.Wait()
	data, _, err := c0.Load(ctx(t), counter)
	if err != nil || string(data) != itoa(workers*increments) {
		t.Fatalf("counter = %q %v, want %d", data, err, workers*increments)
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestReadOnlyRefusal(t *testing.T) {
	srv := startServer(t, filepath.Join(t.TempDir(), "Data.fs"), "127.0.0.1:0", node.ProtocolPickle, true)
	ctx5, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Dial(ctx5, srv.addr, client.Options{}); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("writable register on a read-only server: %v", err)
	}
	c := dial(t, srv.addr, client.Options{ReadOnly: true})
	if _, err := c.NewOids(ctx(t), 1); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("new_oids on read-only: %v", err)
	}
	txn := c.Begin(client.TxnMeta{})
	txn.Store(1, 0, []byte("x"))
	if _, err := txn.Commit(ctx(t)); !errors.Is(err, storage.ErrReadOnly) {
		t.Fatalf("commit on read-only: %v", err)
	}
}

func TestReconnectAndCatchUpInvalidations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	srv := startServer(t, path, "127.0.0.1:0", node.ProtocolPickle, false)
	addr := srv.addr
	writer := dial(t, addr, client.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	reader := dial(t, addr, client.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	tid1 := commit(t, writer, 0, 5, "a")
	if data, _, err := reader.Load(ctx(t), 5); err != nil || string(data) != "a" {
		t.Fatalf("load = %q %v", data, err)
	}
	srv.stop()

	// While the reader is away, another process changes the object.
	store, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	txn, _ := store.TpcBegin(context.Background(), storage.TxnMeta{})
	if err := txn.Store(5, tid1, []byte("b")); err != nil {
		t.Fatal(err)
	}
	txn.TpcVote()
	tid2, _ := txn.TpcFinish()
	store.Close()

	startServer(t, path, addr, node.ProtocolPickle, false)
	// Like ZEO, the client serves its cache while disconnected; once it
	// is connected again the cache must have caught up.
	if err := reader.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
	data, serial, err := reader.Load(ctx(t), 5)
	if err != nil || string(data) != "b" || serial != tid2 {
		t.Fatalf("after reconnect load = %q %s %v; the cache kept a stale revision", data, serial, err)
	}
	if err := writer.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
}
