package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/storage"
)

// Node is a running zrs node: its storage and the services around it.
// With a replication block it is a primary (replicate_to), a read-only
// secondary (replicate_from) or a cascading secondary (both).
type Node struct {
	cfg     *Config
	log     hclog.Logger
	store   *storage.FileStorage
	zeo     *ZEOService
	ln      net.Listener
	feed    *Feed
	feedLn  net.Listener
	replica *Replica
}

// New opens the node's storage and binds its listeners, so that errors in
// the configuration surface before Run.
func New(cfg *Config, log hclog.Logger) (*Node, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	n := &Node{cfg: cfg, log: log}
	store, err := storage.Open(cfg.Storage.Path, storage.Options{
		ReadOnly: false,
		Logger:   log.Named("storage"),
	})
	if err != nil {
		return nil, fmt.Errorf("open storage %s: %w", cfg.Storage.Path, err)
	}
	n.store = store
	rep := cfg.Replication
	secondary := rep != nil && rep.ReplicateFrom != ""
	n.zeo, err = NewZEOService(ZEOServiceConfig{
		Storage:  store,
		Name:     cfg.Storage.Name,
		Protocol: cfg.ZEO.Protocol,
		ReadOnly: cfg.ZEO.ReadOnly || secondary,
		Logger:   log.Named("zeo"),

		TransactionTimeout: cfg.ZEO.TxnTimeout(),
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	n.ln, err = listen(cfg.ZEO.Listen)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("zeo listen: %w", err)
	}
	if rep != nil && rep.ReplicateTo != "" {
		n.feed = NewFeed(FeedConfig{Storage: store, Logger: log.Named("feed"), KeepAlive: rep.KeepAlive()})
		if n.feedLn, err = listen(rep.ReplicateTo); err != nil {
			n.ln.Close()
			store.Close()
			return nil, fmt.Errorf("replication listen: %w", err)
		}
	}
	if secondary {
		n.replica = NewReplica(ReplicaConfig{
			Storage:   store,
			Logger:    log.Named("replica"),
			Name:      cfg.Name,
			Protocol:  rep.Protocol,
			KeepAlive: rep.KeepAlive(),
			Publish:   n.zeo.Publish(),
		}, rep.ReplicateFrom)
	}
	return n, nil
}

// ReplicationAddr returns where the node serves its replication stream,
// or nil.
func (n *Node) ReplicationAddr() net.Addr {
	if n.feedLn == nil {
		return nil
	}
	return n.feedLn.Addr()
}

// Feed returns the node's replication feed, or nil if it serves none.
func (n *Node) Feed() *Feed { return n.feed }

// Replica returns the node's replica, or nil if it is not a secondary.
func (n *Node) Replica() *Replica { return n.replica }

// OnReplicationProgress sets a function told about a catch-up in progress
// about once a second. Call it before Run.
func (n *Node) OnReplicationProgress(fn func(Progress)) {
	if n.replica != nil {
		n.replica.cfg.OnProgress = fn
	}
}

func listen(addr string) (net.Listener, error) {
	network := Network(addr)
	if network == "unix" {
		// A socket file left by a crashed process would block the bind.
		if err := os.Remove(addr); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return net.Listen(network, addr)
}

// ZEOAddr returns the address clients connect to.
func (n *Node) ZEOAddr() net.Addr { return n.ln.Addr() }

// Storage returns the node's storage.
func (n *Node) Storage() *storage.FileStorage { return n.store }

// Run serves until ctx is done, then shuts down gracefully: it stops
// accepting, aborts transactions in progress, closes connections and
// closes the storage, which writes the .index.
func (n *Node) Run(ctx context.Context) error {
	n.log.Info("serving ZEO", "address", n.ln.Addr().String(), "storage", n.cfg.Storage.Path,
		"name", n.cfg.Storage.Name, "protocol", n.cfg.ZEO.Protocol, "read_only", n.zeo.ReadOnly(),
		"last_tid", n.store.LastTransaction())
	// The ZEO service stops first, so that replication still sends every
	// commit it finished; if replication fails, the ZEO service stops too.
	zeoCtx, stopZEO := context.WithCancel(ctx)
	defer stopZEO()
	replCtx, stopRepl := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRepl()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	run := func(i int, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer stopZEO()
			errs[i] = f()
		}()
	}
	if n.feed != nil {
		n.log.Info("serving replication", "address", n.feedLn.Addr().String())
		run(1, func() error { return n.feed.Serve(replCtx, n.feedLn) })
	}
	if n.replica != nil {
		run(2, func() error { return n.replica.Run(replCtx) })
	}
	errs[0] = n.zeo.Serve(zeoCtx, n.ln)
	stopRepl()
	wg.Wait()
	err := errors.Join(errs...)
	if cerr := n.store.Close(); err == nil {
		err = cerr
	}
	n.log.Info("stopped")
	return err
}
