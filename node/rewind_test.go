package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/internal/testlog"
	"github.com/zrs-go/zrs/node"
	"github.com/zrs-go/zrs/storage"
)

// rwTxn is one test transaction: a tid and the data it stores in oid 0.
type rwTxn struct {
	tid  storage.Tid
	data string
}

// rwOpen creates a storage at dir/Data.fs holding txns.
func rwOpen(t *testing.T, dir string, txns []rwTxn) *storage.FileStorage {
	t.Helper()
	s, err := storage.Open(filepath.Join(dir, "Data.fs"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range txns {
		rwCommit(t, s, x)
	}
	return s
}

func rwCommit(t *testing.T, s *storage.FileStorage, x rwTxn) {
	t.Helper()
	txn, err := s.TpcBegin(context.Background(), storage.TxnMeta{Tid: x.tid, User: []byte("test"), Description: []byte(x.data)})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Restore(0, x.tid, []byte(x.data), 0); err != nil {
		t.Fatal(err)
	}
	// A second object created by some transactions, so that the rewind
	// also has oids to forget.
	if len(x.data)%2 == 0 {
		if err := txn.Restore(storage.Oid(x.tid%1000+1), x.tid, []byte("extra "+x.data), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.TpcVote(); err != nil {
		t.Fatal(err)
	}
	if _, err := txn.TpcFinish(); err != nil {
		t.Fatal(err)
	}
}

// rwServeFeed serves s's replication stream until the test ends.
func rwServeFeed(t *testing.T, s *storage.FileStorage) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := node.NewFeed(node.FeedConfig{Storage: s, KeepAlive: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String()
}

// sideTxns reads the transactions of the side files: tid → data of oid 0.
func sideTxns(t *testing.T, paths []string) map[storage.Tid]string {
	t.Helper()
	out := make(map[storage.Tid]string)
	for _, p := range paths {
		if _, err := storage.Check(p); err != nil {
			t.Fatalf("side file %s: %v", p, err)
		}
		s, err := storage.Open(p, storage.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		it, err := s.Iterate(0, 0)
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
			for _, d := range rec.Records {
				if d.Oid == 0 {
					out[rec.Tid] = string(d.Data)
				}
			}
		}
		s.Close()
	}
	return out
}

// TestReplicaRewind: with Rewind set, a secondary that the upstream finds
// ahead or diverged moves its own transactions to side files, reconnects
// and ends byte-identical to the upstream; without it, it stops and keeps
// its data.
func TestReplicaRewind(t *testing.T) {
	base := storage.TidFromTime(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	tx := func(n int, data string) rwTxn { return rwTxn{base + storage.Tid(n), data} }
	common := []rwTxn{tx(1, "one"), tx(2, "two!"), tx(3, "three")}
	cases := []struct {
		name     string
		upstream []rwTxn
		own      []rwTxn // after common
		// rewinds lists the tids rewound to, in order.
		rewinds []storage.Tid
		static  bool
	}{
		{name: "ahead",
			upstream: nil, own: []rwTxn{tx(4, "mine 4"), tx(5, "mine 5!")},
			rewinds: []storage.Tid{base + 3}},
		{name: "diverged",
			upstream: []rwTxn{tx(5, "theirs 5"), tx(7, "theirs 7")}, own: []rwTxn{tx(4, "mine 4"), tx(6, "mine 6")},
			// The upstream's guess at the common transaction is the one
			// before ours, base+5, so the first round rewinds to our
			// newest before it, base+4, which the second handshake finds
			// is not common either.
			rewinds: []storage.Tid{base + 4, base + 3}},
		{name: "same tid, other data",
			upstream: []rwTxn{tx(4, "theirs 4"), tx(5, "theirs 5")}, own: []rwTxn{tx(4, "mine 4")},
			rewinds: []storage.Tid{base + 3}},
		{name: "ahead of an empty upstream",
			upstream: nil, own: nil,
			rewinds: []storage.Tid{0}},
		{name: "static mode stops",
			upstream: []rwTxn{tx(5, "theirs 5")}, own: []rwTxn{tx(4, "mine 4")},
			static: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			upTxns := append(append([]rwTxn(nil), common...), c.upstream...)
			ownTxns := append(append([]rwTxn(nil), common...), c.own...)
			if c.name == "ahead of an empty upstream" {
				upTxns = nil
			}
			upDir, secDir := t.TempDir(), t.TempDir()
			up := rwOpen(t, upDir, upTxns)
			sec := rwOpen(t, secDir, ownTxns)
			before, _ := os.ReadFile(sec.Path())

			logs := &testlog.Buffer{}
			var mu sync.Mutex
			var results []storage.RewindResult
			r := node.NewReplica(node.ReplicaConfig{
				Storage:    sec,
				Logger:     hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: logs}),
				Name:       "s",
				KeepAlive:  time.Second,
				MinBackoff: 10 * time.Millisecond,
				Rewind:     !c.static,
				OnRewind: func(res storage.RewindResult) {
					mu.Lock()
					results = append(results, res)
					mu.Unlock()
				},
			}, rwServeFeed(t, up))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			stopReplica := func() {
				if cancel != nil {
					cancel()
					if err := <-done; err != nil {
						t.Errorf("replica: %v", err)
					}
					cancel = nil
				}
			}
			defer stopReplica()

			if c.static {
				waitFor(t, "the secondary to stop", func() bool { return r.Stopped() != nil })
				if err := r.Stopped(); !errors.Is(err, node.ErrStopped) {
					t.Fatalf("stop reason: %v", err)
				}
				stopReplica()
				sec.Close()
				up.Close()
				if after, _ := os.ReadFile(sec.Path()); !bytes.Equal(after, before) {
					t.Fatal("the data file changed in static mode")
				}
				if side, _ := filepath.Glob(sec.Path() + ".diverged-*"); len(side) > 0 {
					t.Fatalf("side files in static mode: %v", side)
				}
				return
			}

			// Replication resumes after the rewinds: a new upstream
			// commit arrives too.
			last := tx(20, "after the rewind")
			rwCommit(t, up, last)
			waitFor(t, "the secondary to catch up", func() bool { return sec.LastTransaction() == last.tid })
			stopReplica()
			if err := r.Stopped(); err != nil {
				t.Fatalf("stopped: %v", err)
			}

			mu.Lock()
			defer mu.Unlock()
			if len(results) != len(c.rewinds) {
				t.Fatalf("rewinds %+v, want to %v", results, c.rewinds)
			}
			var sides []string
			removed := 0
			for i, res := range results {
				want := sec.Path() + ".diverged-" + c.rewinds[i].String()
				if res.LastTid != c.rewinds[i] || res.SideFile != want || res.Removed == 0 {
					t.Fatalf("rewind %d: %+v, want to %s into %s", i, res, c.rewinds[i], want)
				}
				sides = append(sides, res.SideFile)
				removed += res.Removed
				// Logged at WARN with the count, side file and tid.
				line := ""
				for _, l := range strings.Split(logs.String(), "\n") {
					if strings.Contains(l, "[WARN]") && strings.Contains(l, "side_file=") && strings.Contains(l, res.SideFile) {
						line = l
					}
				}
				if !strings.Contains(line, fmt.Sprintf("removed_transactions=%d", res.Removed)) ||
					!strings.Contains(line, "tid="+res.LastTid.String()) {
					t.Fatalf("no WARN line for rewind %d in:\n%s", i, logs.String())
				}
			}

			// The side files hold exactly the transactions that are not
			// the upstream's.
			upHas := make(map[rwTxn]bool)
			for _, x := range upTxns {
				upHas[x] = true
			}
			wantSide := make(map[storage.Tid]string)
			for _, x := range ownTxns {
				if !upHas[x] || x.tid > c.rewinds[len(c.rewinds)-1] {
					wantSide[x.tid] = x.data
				}
			}
			gotSide := sideTxns(t, sides)
			if fmt.Sprint(sortedTxns(gotSide)) != fmt.Sprint(sortedTxns(wantSide)) || removed != len(wantSide) {
				t.Fatalf("side files hold %v (%d removed), want %v", sortedTxns(gotSide), removed, sortedTxns(wantSide))
			}

			if err := sec.Close(); err != nil {
				t.Fatal(err)
			}
			if err := up.Close(); err != nil {
				t.Fatal(err)
			}
			want, _ := os.ReadFile(up.Path())
			got, _ := os.ReadFile(sec.Path())
			if !bytes.Equal(got, want) {
				t.Fatalf("the secondary's file differs from the upstream's (%d vs %d bytes)", len(got), len(want))
			}
			if _, err := storage.Check(sec.Path()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func sortedTxns(m map[storage.Tid]string) []string {
	var out []string
	for tid, data := range m {
		out = append(out, tid.String()+"="+data)
	}
	sort.Strings(out)
	return out
}
