package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/storage"
)

// Node is a running zrs node: its storage and the services around it.
type Node struct {
	cfg   *Config
	log   hclog.Logger
	store *storage.FileStorage
	zeo   *ZEOService
	ln    net.Listener
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
	n.zeo, err = NewZEOService(ZEOServiceConfig{
		Storage:  store,
		Name:     cfg.Storage.Name,
		Protocol: cfg.ZEO.Protocol,
		ReadOnly: cfg.ZEO.ReadOnly,
		Logger:   log.Named("zeo"),
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
	return n, nil
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
	err := n.zeo.Serve(ctx, n.ln)
	if cerr := n.store.Close(); err == nil {
		err = cerr
	}
	n.log.Info("stopped")
	return err
}
