package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/node"
	"github.com/zrs-go/zrs/storage"
)

// testNode runs a node in-process until the test ends.
type testNode struct {
	*node.Node
	cancel context.CancelFunc
	done   chan error
}

func startNode(t *testing.T, cfg *node.Config) *testNode {
	t.Helper()
	log := hclog.New(&hclog.LoggerOptions{Name: cfg.Name, Level: hclog.Warn, Output: os.Stderr})
	n, err := node.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	t.Cleanup(tn.stop)
	return tn
}

func (tn *testNode) stop() {
	if tn.cancel == nil {
		return
	}
	tn.cancel()
	<-tn.done
	tn.cancel = nil
}

func nodeConfig(name, dir string, rep *node.ReplicationConfig) *node.Config {
	c := node.Default(dir)
	c.Name = name
	c.ZEO.Listen = "127.0.0.1:0"
	c.Replication = rep
	if rep != nil {
		if rep.KeepAliveDelay == "" {
			rep.KeepAliveDelay = "1s"
		}
		if rep.Protocol == "" {
			rep.Protocol = node.ReplicationGo1
		}
	}
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPrimarySecondaryCascade(t *testing.T) {
	for _, proto := range []string{node.ReplicationGo1, node.ReplicationZRS20} {
		t.Run(proto, func(t *testing.T) {
			primary := startNode(t, nodeConfig("p", t.TempDir(), &node.ReplicationConfig{ReplicateTo: "127.0.0.1:0"}))
			second := startNode(t, nodeConfig("s1", t.TempDir(), &node.ReplicationConfig{
				ReplicateFrom: primary.ReplicationAddr().String(), ReplicateTo: "127.0.0.1:0", Protocol: proto}))
			third := startNode(t, nodeConfig("s2", t.TempDir(), &node.ReplicationConfig{
				ReplicateFrom: second.ReplicationAddr().String(), Protocol: proto}))

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			w, err := client.Dial(ctx, primary.ZEOAddr().String(), client.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			var mu sync.Mutex
			var seen []storage.Tid
			r, err := client.Dial(ctx, third.ZEOAddr().String(), client.Options{ReadOnly: true,
				OnInvalidate: func(inv client.Invalidation) {
					mu.Lock()
					seen = append(seen, inv.Tid)
					mu.Unlock()
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := client.Dial(ctx, second.ZEOAddr().String(), client.Options{}); !errors.Is(err, storage.ErrReadOnly) {
				t.Fatalf("writable client on a secondary: %v", err)
			}

			var last storage.Tid
			for i := 0; i < 20; i++ {
				txn := w.Begin(client.TxnMeta{User: "u", Description: "d", Extension: map[string]any{"i": int64(i)}})
				txn.Store(storage.Oid(i%5), serialOf(t, w, ctx, storage.Oid(i%5)), []byte{byte(i)})
				if last, err = txn.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "the cascade to catch up", func() bool {
				return third.Storage().LastTransaction() == last
			})
			waitFor(t, "invalidations on the last secondary", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(seen) > 0 && seen[len(seen)-1] == last
			})
			data, serial, err := r.Load(ctx, 4)
			if err != nil || len(data) != 1 || data[0] != 19 || serial != last {
				t.Fatalf("load on the secondary: %v %v %s", data, err, serial)
			}
			// Files are byte-identical down the cascade.
			primary.stop()
			second.stop()
			third.stop()
			want, _ := os.ReadFile(primary.Storage().Path())
			for _, n := range []*testNode{second, third} {
				got, _ := os.ReadFile(n.Storage().Path())
				if string(got) != string(want) {
					t.Fatalf("%s differs from the primary (%d vs %d bytes)", n.Storage().Path(), len(got), len(want))
				}
			}
		})
	}
}

func serialOf(t *testing.T, c *client.Client, ctx context.Context, oid storage.Oid) storage.Tid {
	_, serial, err := c.Load(ctx, oid)
	if errors.Is(err, storage.ErrNoObject) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return serial
}

// TestSecondaryAheadStops: in static mode a secondary whose data is not a
// prefix of the upstream's stops and leaves its data alone.
func TestSecondaryAheadStops(t *testing.T) {
	primaryDir := t.TempDir()
	primary := startNode(t, nodeConfig("p", primaryDir, &node.ReplicationConfig{ReplicateTo: "127.0.0.1:0"}))
	// A secondary with a transaction the primary never had.
	secDir := t.TempDir()
	s, err := storage.Open(filepath.Join(secDir, "Data.fs"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	txn, _ := s.TpcBegin(context.Background(), storage.TxnMeta{})
	txn.Store(0, 0, []byte("mine"))
	txn.TpcVote()
	txn.TpcFinish()
	s.Close()
	before, _ := os.ReadFile(filepath.Join(secDir, "Data.fs"))

	sec := startNode(t, nodeConfig("s", secDir, &node.ReplicationConfig{ReplicateFrom: primary.ReplicationAddr().String()}))
	waitFor(t, "the secondary to stop", func() bool { return sec.Replica().Stopped() != nil })
	if err := sec.Replica().Stopped(); !errors.Is(err, node.ErrStopped) {
		t.Fatalf("stop reason: %v", err)
	}
	sec.stop()
	after, _ := os.ReadFile(filepath.Join(secDir, "Data.fs"))
	if string(after) != string(before) {
		t.Fatal("the stopped secondary's data file changed")
	}
}

func TestPrimaryReportsSecondaryLag(t *testing.T) {
	primary := startNode(t, nodeConfig("p", t.TempDir(), &node.ReplicationConfig{ReplicateTo: "127.0.0.1:0"}))
	sec := startNode(t, nodeConfig("s1", t.TempDir(), &node.ReplicationConfig{ReplicateFrom: primary.ReplicationAddr().String()}))
	tid, _ := commitOne(t, primary)
	waitFor(t, "the secondary's acknowledgement", func() bool {
		l, ok := primary.Feed().Lags()["s1"]
		return ok && l.Acked == tid && l.Transactions == 0
	})
	waitFor(t, "the secondary's own lag report", func() bool {
		l := sec.Replica().Lag()
		return l.Connected && l.LastApplied == tid && l.Seconds == 0 && l.Transactions == 0
	})
}

// TestSecondaryDivergedStops: a secondary holding a transaction that its
// upstream never had, older than the upstream's last, is told it has
// diverged and stops without touching its data (static mode never
// rewinds).
func TestSecondaryDivergedStops(t *testing.T) {
	commitAt := func(s *storage.FileStorage, tid storage.Tid, data string) {
		t.Helper()
		txn, err := s.TpcBegin(context.Background(), storage.TxnMeta{Tid: tid})
		if err != nil {
			t.Fatal(err)
		}
		if err := txn.Restore(0, tid, []byte(data), 0); err != nil {
			t.Fatal(err)
		}
		txn.TpcVote()
		if _, err := txn.TpcFinish(); err != nil {
			t.Fatal(err)
		}
	}
	base := storage.TidFromTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	primaryDir, secDir := t.TempDir(), t.TempDir()
	p, err := storage.Open(filepath.Join(primaryDir, "Data.fs"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	commitAt(p, base+1, "common")
	commitAt(p, base+3, "primary only")
	p.Close()
	s, err := storage.Open(filepath.Join(secDir, "Data.fs"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	commitAt(s, base+1, "common")
	commitAt(s, base+2, "secondary only")
	s.Close()
	before, _ := os.ReadFile(filepath.Join(secDir, "Data.fs"))

	primary := startNode(t, nodeConfig("p", primaryDir, &node.ReplicationConfig{ReplicateTo: "127.0.0.1:0"}))
	sec := startNode(t, nodeConfig("s", secDir, &node.ReplicationConfig{ReplicateFrom: primary.ReplicationAddr().String()}))
	waitFor(t, "the secondary to stop", func() bool { return sec.Replica().Stopped() != nil })
	err = sec.Replica().Stopped()
	if !errors.Is(err, node.ErrStopped) || !strings.Contains(err.Error(), "not in upstream") ||
		!strings.Contains(err.Error(), (base+1).String()) {
		t.Fatalf("stop reason %q: want divergence naming the common transaction %s", err, base+1)
	}
	sec.stop()
	after, _ := os.ReadFile(filepath.Join(secDir, "Data.fs"))
	if string(after) != string(before) {
		t.Fatal("the diverged secondary's data file changed")
	}
}

// commitOne stores "x" as object 0 on n through a Go client and returns
// the commit's tid and the client (closed with the test).
func commitOne(t *testing.T, n *testNode) (storage.Tid, *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := client.Dial(ctx, n.ZEOAddr().String(), client.Options{CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	txn := w.Begin(client.TxnMeta{})
	txn.Store(0, 0, []byte("x"))
	tid, err := txn.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tid, w
}
