package client_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/node"
	"github.com/zrs-go/zrs/storage"
)

// TestConcurrentUseOfOneClient commits and loads from many goroutines
// through one client. A ZEO connection carries one transaction at a time,
// so the client must take the commits in turn; overlapping tpc_begins
// would make the server drop the connection.
func TestConcurrentUseOfOneClient(t *testing.T) {
	for _, protocol := range []string{node.ProtocolPickle, node.ProtocolMsgpack} {
		t.Run(protocol, func(t *testing.T) {
			srv := startServer(t, filepath.Join(t.TempDir(), "Data.fs"), "127.0.0.1:0", protocol, false)
			c := dial(t, srv.addr, client.Options{CacheBytes: -1})
			const workers, commits = 8, 20
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					oid := storage.Oid(100 + w)
					var serial storage.Tid
					for n := range commits {
						txn := c.Begin(client.TxnMeta{})
						data := fmt.Sprintf("worker %d commit %d", w, n)
						txn.Store(oid, serial, []byte(data))
						tid, err := txn.Commit(ctx(t))
						if err != nil {
							errs <- fmt.Errorf("worker %d commit %d: %w", w, n, err)
							return
						}
						serial = tid
						got, gotSerial, err := c.Load(ctx(t), oid)
						if err != nil || string(got) != data || gotSerial != tid {
							errs <- fmt.Errorf("worker %d: load = %q %s %v, want %q %s", w, got, gotSerial, err, data, tid)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if n := srv.store.Len(); n != workers {
				t.Errorf("the storage holds %d objects, want %d", n, workers)
			}
		})
	}
}
