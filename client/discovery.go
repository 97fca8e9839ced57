package client

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/registry"
)

// ZKMode says which servers a ZKSource names.
type ZKMode int

const (
	// ZKPrimary names the primary: the ZEO address in the primary znode.
	// For read-write clients.
	ZKPrimary ZKMode = iota
	// ZKSecondaries names the secondaries (nodes/* whose role is
	// secondary) in a random order, so that clients spread over them,
	// then the primary as a fallback. For read-only clients.
	ZKSecondaries
)

func (m ZKMode) String() string {
	switch m {
	case ZKPrimary:
		return "primary"
	case ZKSecondaries:
		return "secondaries"
	}
	return fmt.Sprintf("ZKMode(%d)", int(m))
}

// ZKSource is an AddressSource that follows a zrs cluster through
// ZooKeeper (the layout of cluster.md, read through package registry). It
// is also a WatchingSource, so a connected client moves as soon as the
// primary does, an EpochSource (the epoch of the primary znode fences
// servers of older epochs) and a FallbackSource (readers leave the
// primary when a secondary is available).
//
// While ZooKeeper is unavailable (or the primary znode is missing, during
// an election) it keeps naming the servers it last knew. Its methods are
// safe for concurrent use; one ZKSource may serve many clients.
type ZKSource struct {
	mode ZKMode
	log  hclog.Logger
	sess *registry.Session
	own  bool // sess is closed by Close
	stop context.CancelFunc

	mu sync.Mutex
	// primary is the last primary known (kept when the znode goes).
	primary registry.PrimaryRecord
	// secondaries are the ZEO addresses of the secondaries, sorted.
	secondaries []string
	// secEpochs are the secondaries' epochs, by address: a change lets
	// readers on the fallback try the secondaries again.
	secEpochs map[string]uint64
	epoch     uint64
	// key identifies what Addresses returns, up to order; a change of
	// it (or of epoch) closes changed.
	key     string
	changed chan struct{}
	ready   chan struct{} // closed once some address is known
	isReady bool
}

var (
	_ WatchingSource = (*ZKSource)(nil)
	_ EpochSource    = (*ZKSource)(nil)
	_ FallbackSource = (*ZKSource)(nil)
)

// NewZKSource connects to ZooKeeper with cfg and returns a source for
// mode, once it has read the cluster's state (waiting for ZooKeeper until
// ctx ends). log may be nil. Close it when done.
func NewZKSource(ctx context.Context, cfg registry.Config, mode ZKMode, log hclog.Logger) (*ZKSource, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	sess, err := registry.Connect(ctx, cfg, log.Named("zk"))
	if err != nil {
		return nil, err
	}
	s, err := NewZKSourceWithSession(ctx, sess, mode, log)
	if err != nil {
		sess.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// NewZKSourceWithSession is NewZKSource on an existing registry session,
// which Close leaves open.
func NewZKSourceWithSession(ctx context.Context, sess *registry.Session, mode ZKMode, log hclog.Logger) (*ZKSource, error) {
	if mode != ZKPrimary && mode != ZKSecondaries {
		return nil, fmt.Errorf("client: unknown ZooKeeper mode %d", int(mode))
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &ZKSource{
		mode:    mode,
		log:     log,
		sess:    sess,
		changed: make(chan struct{}),
		ready:   make(chan struct{}),
	}
	// Read once, so that Addresses answers at once; the watches below
	// then follow every change.
	pv, err := sess.ReadPrimary(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: reading the primary from ZooKeeper: %w", err)
	}
	s.setPrimary(pv)
	if mode == ZKSecondaries {
		nodes, err := sess.ReadNodes(ctx)
		if err != nil {
			return nil, fmt.Errorf("client: reading the nodes from ZooKeeper: %w", err)
		}
		s.setNodes(nodes)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	sess.WatchPrimary(wctx, s.setPrimary)
	if mode == ZKSecondaries {
		sess.WatchNodes(wctx, s.setNodes)
	}
	return s, nil
}

// setPrimary takes a new view of the primary znode.
func (s *ZKSource) setPrimary(v registry.PrimaryView) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !v.Present || v.Record.ZEO == "" {
		if v.Present {
			s.log.Warn("the primary znode names no ZEO address; ignoring it", "primary", v.Record.Name)
		} else if s.primary.ZEO != "" {
			s.log.Info("no primary in ZooKeeper (election in progress?); keeping the last one",
				"last", s.primary.Name, "zeo", s.primary.ZEO)
		}
		return
	}
	if v.Record != s.primary {
		s.log.Info("primary", "name", v.Record.Name, "zeo", v.Record.ZEO, "epoch", v.Record.Epoch)
	}
	s.primary = v.Record
	s.epoch = max(s.epoch, v.Record.Epoch)
	s.update()
}

// setNodes takes a new list of node records.
func (s *ZKSource) setNodes(nodes []registry.NodeRecord) {
	var sec []string
	epochs := make(map[string]uint64)
	for _, n := range nodes {
		if n.Role == registry.RoleSecondary && n.ZEO != "" {
			sec = append(sec, n.ZEO)
			epochs[n.ZEO] = max(epochs[n.ZEO], n.Epoch)
		}
	}
	slices.Sort(sec)
	sec = slices.Compact(sec)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(sec) == 0 && len(s.secondaries) > 0 && s.primary.ZEO == "" {
		// Nothing else to offer: keep what was known.
		return
	}
	if !slices.Equal(sec, s.secondaries) {
		s.log.Info("secondaries", "zeo", sec)
	}
	s.secondaries, s.secEpochs = sec, epochs
	s.update()
}

// update signals a change of what Addresses returns; s.mu is held.
func (s *ZKSource) update() {
	key := fmt.Sprintf("%d|%s", s.epoch, s.primary.ZEO)
	if s.mode == ZKSecondaries {
		key = fmt.Sprintf("%s|%v", key, s.secEpochs) // fmt sorts map keys
	}
	if len(s.addressesLocked()) > 0 && !s.isReady {
		s.isReady = true
		close(s.ready)
	}
	if key != s.key {
		s.key = key
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

// addressesLocked returns the addresses in their canonical order; s.mu
// is held.
func (s *ZKSource) addressesLocked() []string {
	if s.mode == ZKPrimary {
		if s.primary.ZEO == "" {
			return nil
		}
		return []string{s.primary.ZEO}
	}
	out := slices.Clone(s.secondaries)
	if s.primary.ZEO != "" && !slices.Contains(out, s.primary.ZEO) {
		out = append(out, s.primary.ZEO)
	}
	return out
}

// Addresses returns the primary's ZEO address (ZKPrimary), or the
// secondaries' in a random order followed by the primary's
// (ZKSecondaries). Before anything is known (no primary was ever
// elected) it waits until something is, or ctx ends.
func (s *ZKSource) Addresses(ctx context.Context) ([]string, error) {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("client: no zrs server known in ZooKeeper yet: %w", ctx.Err())
	}
	s.mu.Lock()
	out := s.addressesLocked()
	n := len(s.secondaries)
	s.mu.Unlock()
	if s.mode == ZKSecondaries && n > 1 {
		// A random rotation spreads clients, keeping the fallback last.
		k := rand.IntN(n)
		rot := append(slices.Clone(out[k:n]), out[:k]...)
		copy(out, rot)
	}
	return out, nil
}

// Fallback reports whether addr is listed only as a fallback: the
// primary, for ZKSecondaries.
func (s *ZKSource) Fallback(addr string) bool {
	if s.mode != ZKSecondaries {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return addr == s.primary.ZEO && !slices.Contains(s.secondaries, addr)
}

// Changed returns a channel closed at the next change of the addresses
// (up to order), of the epoch, or (ZKSecondaries) of a secondary's
// epoch.
func (s *ZKSource) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Epoch returns the highest epoch seen in the primary znode.
func (s *ZKSource) Epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// Primary returns the last primary record seen (zero if none yet).
func (s *ZKSource) Primary() registry.PrimaryRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.primary
}

// Close stops watching, and closes the ZooKeeper session if the source
// opened it.
func (s *ZKSource) Close() error {
	s.stop()
	if s.own {
		s.sess.Close()
	}
	return nil
}

// DialCluster connects to the zrs cluster that zk describes: a read-write
// client (opts.ReadOnly false) follows the primary, a read-only one is
// spread over the secondaries with the primary as a fallback. It sets
// opts.Source to a ZKSource (closed with the client) and dials; ctx bounds
// both reaching ZooKeeper and the first connection. See ZKSource.
//
//	c, err := client.DialCluster(ctx, registry.Default("prod", "zk1:2181", "zk2:2181"), client.Options{})
func DialCluster(ctx context.Context, zk registry.Config, opts Options) (*Client, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	mode := ZKPrimary
	if opts.ReadOnly {
		mode = ZKSecondaries
	}
	src, err := NewZKSource(ctx, zk, mode, log.Named("discovery"))
	if err != nil {
		return nil, err
	}
	opts.Source = src
	c, err := Dial(ctx, "", opts)
	if err != nil {
		src.Close()
		return nil, err
	}
	c.onClose = func() { src.Close() }
	return c, nil
}
