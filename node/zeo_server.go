package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// ZEOServiceConfig configures a ZEOService.
type ZEOServiceConfig struct {
	Storage *storage.FileStorage
	// Name is the storage name clients register with ("1" by default).
	Name string
	// Protocol is ProtocolPickle (Z5) or ProtocolMsgpack (M5).
	Protocol string
	// ReadOnly refuses writable registrations and writes.
	ReadOnly bool
	Logger   hclog.Logger
	// MaxQueuedBytes bounds the frames waiting for one slow client.
	MaxQueuedBytes int
	// TransactionTimeout, if positive, bounds how long a client may take
	// between a successful vote and tpc_finish or tpc_abort (commits of
	// the same objects, and the acknowledgement of later commits, wait
	// for it); past it the connection is closed and the transaction
	// aborted (ZEO's transaction-timeout). Zero means no limit, as in ZEO.
	TransactionTimeout time.Duration
}

// ZEOService serves one FileStorage to ZEO 5 clients.
type ZEOService struct {
	log      hclog.Logger
	store    *storage.FileStorage
	name     string
	encoding zeo.Encoding
	readOnly atomic.Bool
	fence    atomic.Pointer[string] // why commits are refused; nil when not fenced
	guard    atomic.Pointer[func() error]
	// epoch is the cluster epoch reported by get_info; 0 in static mode.
	epoch    atomic.Uint64
	maxQueue int
	txnLimit time.Duration
	started  time.Time
	stats    serviceStats
	metrics  *nodeMetrics // latency histograms and fence counts; nil: none (metrics.go)

	// mu guards conns and lastTid. Commits update both under the storage's
	// publication, so registering a connection and reading the last tid
	// are atomic with respect to invalidations.
	mu      sync.Mutex
	conns   map[*zeoConn]struct{}
	lastTid storage.Tid

	wg sync.WaitGroup
}

type serviceStats struct {
	loads, stores, commits, aborts, conflicts atomic.Int64
	activeTxns, waiting                       atomic.Int64
}

// NewZEOService returns a service for cfg.Storage.
func NewZEOService(cfg ZEOServiceConfig) (*ZEOService, error) {
	if cfg.Storage == nil {
		return nil, errors.New("zeo service: no storage")
	}
	z := &ZEOService{
		log:      cfg.Logger,
		store:    cfg.Storage,
		name:     cfg.Name,
		maxQueue: cfg.MaxQueuedBytes,
		txnLimit: cfg.TransactionTimeout,
		started:  time.Now(),
		conns:    make(map[*zeoConn]struct{}),
		lastTid:  cfg.Storage.LastTransaction(),
	}
	if z.log == nil {
		z.log = hclog.NewNullLogger()
	}
	if z.name == "" {
		z.name = "1"
	}
	if z.maxQueue <= 0 {
		z.maxQueue = 64 << 20
	}
	switch cfg.Protocol {
	case "", ProtocolPickle:
		z.encoding = zeo.Pickle
	case ProtocolMsgpack:
		z.encoding = zeo.Msgpack
	default:
		return nil, fmt.Errorf("zeo service: unknown protocol %q", cfg.Protocol)
	}
	z.readOnly.Store(cfg.ReadOnly || cfg.Storage.ReadOnly())
	return z, nil
}

// SetReadOnly switches the service between read-write and read-only (a
// role change); connections registered read-write get ReadOnlyError on
// their next write.
func (z *ZEOService) SetReadOnly(ro bool) { z.readOnly.Store(ro || z.store.ReadOnly()) }

// ReadOnly reports whether the service refuses writes.
func (z *ZEOService) ReadOnly() bool { return z.readOnly.Load() }

// SetEpoch sets the cluster epoch the service reports to clients in
// get_info ("zrs_epoch"), so that they can refuse a server of an older
// epoch than one they have seen (cluster.md, "Fencing"). 0, the value
// in static mode, reports nothing.
func (z *ZEOService) SetEpoch(epoch uint64) { z.epoch.Store(epoch) }

// Epoch returns the epoch set with SetEpoch (0 in static mode).
func (z *ZEOService) Epoch() uint64 { return z.epoch.Load() }

// Serve accepts connections on ln until ctx is done or ln fails. It
// closes every connection before returning.
func (z *ZEOService) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var err error
	for {
		var nc net.Conn
		nc, err = ln.Accept()
		if err != nil {
			break
		}
		c := z.newConn(nc)
		z.wg.Add(1)
		go func() {
			defer z.wg.Done()
			c.serve(ctx)
		}()
	}
	z.closeAll()
	z.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("zeo service: accept: %w", err)
}

func (z *ZEOService) closeAll() {
	z.mu.Lock()
	conns := make([]*zeoConn, 0, len(z.conns))
	for c := range z.conns {
		conns = append(conns, c)
	}
	z.mu.Unlock()
	for _, c := range conns {
		c.nc.Close()
	}
}

// Publish returns the hook that tells clients about a commit made by
// someone other than a ZEO client of this service (a replica applying
// replicated transactions). Pass it to Txn.TpcFinishWith.
func (z *ZEOService) Publish() storage.PublishFunc {
	return func(tid storage.Tid, oids []storage.Oid) { z.invalidate(nil, tid, oids) }
}

// invalidate records tid as the last and queues invalidateTransaction to
// every registered connection but the committer. It runs inside the
// storage's publication, before any reader can see tid.
func (z *ZEOService) invalidate(committer *zeoConn, tid storage.Tid, oids []storage.Oid) {
	list := make(zeo.List, len(oids))
	for i, oid := range oids {
		list[i] = oid.Bytes()
	}
	msg := zeo.NewAsync("invalidateTransaction", tid.Bytes(), list)
	// Clients may have chosen either encoding; encode once per encoding.
	var frames [2][]byte
	frameFor := func(c *zeoConn) ([]byte, error) {
		i := 0
		if c.codec.Encoding() == zeo.Msgpack {
			i = 1
		}
		if frames[i] == nil {
			f, err := c.codec.EncodeFrame(msg)
			if err != nil {
				return nil, err
			}
			frames[i] = f
		}
		return frames[i], nil
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.lastTid = tid
	for c := range z.conns {
		if c == committer || !c.registered.Load() {
			continue
		}
		frame, err := frameFor(c)
		if err != nil {
			z.log.Error("cannot encode invalidations", "tid", tid, "error", err)
			return
		}
		switch err := c.out.pushNotification(frame); {
		case errors.Is(err, errQueueFull):
			c.log.Warn("dropping connection that does not read its invalidations", "error", err)
			c.nc.Close()
		case err != nil:
			// The client is leaving; its connection is being torn down.
		}
	}
}

// register adds c to the invalidation fan-out and returns the last tid,
// atomically with respect to commits.
func (z *ZEOService) register(c *zeoConn) storage.Tid {
	z.mu.Lock()
	defer z.mu.Unlock()
	c.registered.Store(true)
	return z.lastTid
}

// LastTid is the last tid announced to clients.
func (z *ZEOService) LastTid() storage.Tid {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.lastTid
}

// status is server_status and the ruok probe's answer.
func (z *ZEOService) status() *zeo.Dict {
	z.mu.Lock()
	n := len(z.conns)
	last := z.lastTid
	z.mu.Unlock()
	return zeo.NewDict(
		"connections", int64(n),
		"loads", z.stats.loads.Load(),
		"stores", z.stats.stores.Load(),
		"commits", z.stats.commits.Load(),
		"aborts", z.stats.aborts.Load(),
		"active_txns", z.stats.activeTxns.Load(),
		"lock_time", nil,
		"conflicts", z.stats.conflicts.Load(),
		"conflicts_resolved", int64(0),
		"start", z.started.Format("Mon Jan _2 15:04:05 2006"),
		"waiting", z.stats.waiting.Load(),
		"timeout-thread-is-alive", "stub",
		"last-transaction", last.String(),
	)
}

// ruokJSON is the ruok probe's reply: {storage name: status}.
func (z *ZEOService) ruokJSON() ([]byte, error) {
	return zeo.EncodeJSON(zeo.NewDict(z.name, z.status()))
}

func (z *ZEOService) newConn(nc net.Conn) *zeoConn {
	c := &zeoConn{
		srv:       z,
		nc:        nc,
		log:       z.log.With("client", nc.RemoteAddr().String()),
		out:       newOutQueue(nc, z.maxQueue),
		iterators: make(map[int64]*zeoIterator),
	}
	z.mu.Lock()
	z.conns[c] = struct{}{}
	z.mu.Unlock()
	return c
}

func (z *ZEOService) dropConn(c *zeoConn) {
	z.mu.Lock()
	delete(z.conns, c)
	z.mu.Unlock()
}

// isEOF reports the ordinary ways a peer goes away.
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}
