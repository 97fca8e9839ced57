package node_test

import (
	"context"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/zrs-go/zrs/node"
	"github.com/zrs-go/zrs/storage"
)

// fillStorage commits n small transactions, sharing fsyncs.
func fillStorage(b *testing.B, path string, n int) {
	b.Helper()
	s, err := storage.Open(path, storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 100)
	for i := 0; i < n; i++ {
		txn, err := s.TpcBegin(context.Background(), storage.TxnMeta{User: []byte("bench")})
		if err != nil {
			b.Fatal(err)
		}
		if err := txn.Restore(storage.Oid(i%1000), 0, data, 0); err != nil {
			b.Fatal(err)
		}
		if err := txn.TpcVote(); err != nil {
			b.Fatal(err)
		}
		if _, err := txn.TpcFinishQueued(nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCatchUp measures an empty secondary replicating 100,000 small
// transactions from a primary (target: ≥ 50,000 transactions/s).
func BenchmarkCatchUp(b *testing.B) {
	const txns = 100_000
	primaryDir := b.TempDir()
	fillStorage(b, filepath.Join(primaryDir, "Data.fs"), txns)
	t := &testing.T{}
	for _, proto := range []string{node.ReplicationGo1, node.ReplicationZRS20} {
		b.Run(proto, func(b *testing.B) {
			primary := startNodeB(b, t, nodeConfig("p", primaryDir, &node.ReplicationConfig{ReplicateTo: "127.0.0.1:0"}))
			last := primary.Storage().LastTransaction()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				sec := startNodeB(b, t, nodeConfig("s", b.TempDir(), &node.ReplicationConfig{
					ReplicateFrom: primary.ReplicationAddr().String(), Protocol: proto}))
				for sec.Storage().LastTransaction() != last {
					time.Sleep(time.Millisecond)
				}
				b.ReportMetric(float64(txns)/time.Since(start).Seconds(), "txn/s")
				sec.stop()
			}
		})
	}
}

// BenchmarkReplicationLag commits 500 transactions a second on a primary
// and measures when each is durable and visible on a secondary.
func BenchmarkReplicationLag(b *testing.B) {
	t := &testing.T{}
	primary := startNodeB(b, t, nodeConfig("p", b.TempDir(), &node.ReplicationConfig{ReplicateTo: "127.0.0.1:0"}))
	sec := startNodeB(b, t, nodeConfig("s", b.TempDir(), &node.ReplicationConfig{
		ReplicateFrom: primary.ReplicationAddr().String()}))
	store, replica := primary.Storage(), sec.Storage()
	data := make([]byte, 100)
	var lags []time.Duration
	tick := time.NewTicker(2 * time.Millisecond) // 500/s
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		changed := replica.Changed()
		txn, err := store.TpcBegin(context.Background(), storage.TxnMeta{})
		if err != nil {
			b.Fatal(err)
		}
		if err := txn.Restore(storage.Oid(i%100), 0, data, 0); err != nil {
			b.Fatal(err)
		}
		txn.TpcVote()
		tid, err := txn.TpcFinish()
		if err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		for replica.LastTransaction() < tid {
			select {
			case <-changed:
				changed = replica.Changed()
			case <-time.After(5 * time.Second):
				b.Fatal("secondary did not apply the commit")
			}
		}
		lags = append(lags, time.Since(committed))
	}
	b.StopTimer()
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	if len(lags) > 0 {
		b.ReportMetric(float64(lags[len(lags)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds()), "p99-µs")
	}
}

// startNodeB is startNode for benchmarks.
func startNodeB(b *testing.B, t *testing.T, cfg *node.Config) *testNode {
	b.Helper()
	n, err := node.New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	b.Cleanup(tn.stop)
	return tn
}
