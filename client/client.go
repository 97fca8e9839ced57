package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// AddressSource tells the client where servers are. A static list is the
// simplest; a discovery service (ZooKeeper) can implement it too.
type AddressSource interface {
	// Addresses returns the servers to try, best first.
	Addresses(ctx context.Context) ([]string, error)
}

// StaticAddresses is a fixed list of server addresses.
type StaticAddresses []string

// Addresses returns the list.
func (s StaticAddresses) Addresses(context.Context) ([]string, error) { return s, nil }

// Invalidation tells which objects a transaction changed.
type Invalidation struct {
	Tid  storage.Tid
	Oids []storage.Oid
}

// Options configure a Client. The zero value works.
type Options struct {
	// Storage is the storage name to register; "1" if empty.
	Storage string
	// ReadOnly registers read-only.
	ReadOnly bool
	// Source overrides the address given to Dial.
	Source AddressSource
	// CacheBytes bounds the object cache; 0 means 64 MiB, negative
	// disables it.
	CacheBytes int
	// MinBackoff and MaxBackoff bound the delay between reconnection
	// attempts (defaults 100 ms and 10 s).
	MinBackoff, MaxBackoff time.Duration
	// OnInvalidate, if set, is called for every invalidation in order,
	// from the connection's reader: it must not block.
	OnInvalidate func(Invalidation)
	Logger       hclog.Logger
}

// Client is a connection to a ZEO storage that survives server restarts.
// Its methods are safe for concurrent use.
type Client struct {
	opts   Options
	log    hclog.Logger
	source AddressSource
	cache  *cache

	mu        sync.Mutex
	conn      *conn // nil while disconnected
	connected chan struct{}
	lastTid   storage.Tid
	closed    bool
	txnSeq    int64
	// txnSlot serializes commits: a ZEO connection carries one
	// transaction at a time (ZEO's ClientStorage waits likewise).
	txnSlot chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Dial connects to the ZEO server at addr (or opts.Source) and returns
// once the storage is registered. Afterwards the client reconnects by
// itself whenever the connection is lost.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	if opts.Storage == "" {
		opts.Storage = "1"
	}
	switch {
	case opts.CacheBytes == 0:
		opts.CacheBytes = 64 << 20
	case opts.CacheBytes < 0:
		opts.CacheBytes = 0
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	c := &Client{
		opts:      opts,
		log:       opts.Logger,
		source:    opts.Source,
		cache:     newCache(opts.CacheBytes),
		connected: make(chan struct{}),
		txnSlot:   make(chan struct{}, 1),
	}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	if c.source == nil {
		c.source = StaticAddresses{addr}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	cn, err := c.connectOnce(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.setConn(cn)
	c.wg.Add(1)
	go c.maintain(cn)
	return c, nil
}

// connectOnce tries every address once.
func (c *Client) connectOnce(ctx context.Context) (*conn, error) {
	addrs, err := c.source.Addresses(ctx)
	if err != nil {
		return nil, fmt.Errorf("find servers: %w", err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("find servers: %w: no addresses", ErrDisconnected)
	}
	var errs []error
	for _, addr := range addrs {
		cn, err := c.connect(ctx, addr)
		if err == nil {
			return cn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// connect dials addr, registers and brings the cache up to date.
func (c *Client) connect(ctx context.Context, addr string) (*conn, error) {
	cn, err := dialConn(ctx, addr, nil)
	if err != nil {
		return nil, err
	}
	cn.onNotify = func(method string, args []any) { c.notified(cn, method, args) }
	fail := func(err error) (*conn, error) {
		cn.close(err)
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	v, err := cn.call(ctx, "register", c.opts.Storage, c.opts.ReadOnly)
	if err != nil {
		return fail(fmt.Errorf("register: %w", err))
	}
	serverTid := tidValue(v)
	if v == nil {
		if v, err = cn.call(ctx, "lastTransaction"); err != nil {
			return fail(err)
		}
		serverTid = tidValue(v)
	}
	c.mu.Lock()
	known := c.lastTid
	c.mu.Unlock()
	switch {
	case known == 0 || known == serverTid:
	case serverTid < known:
		// The server is behind what this client saw: nothing it says
		// about changes since then can be trusted, so start afresh.
		c.log.Warn("server is behind the client's cache; clearing the cache", "server", addr,
			"server_tid", serverTid, "cache_tid", known)
		c.cache.clear(serverTid)
	default:
		v, err := cn.call(ctx, "getInvalidations", known.Bytes())
		if err != nil {
			return fail(fmt.Errorf("getInvalidations: %w", err))
		}
		if t, ok := zeo.AsSeq(v); ok && len(t) == 2 {
			list, _ := zeo.AsSeq(t[1])
			c.cache.invalidate(tidValue(t[0]), oidList(list))
		} else {
			c.cache.clear(serverTid)
		}
	}
	c.mu.Lock()
	c.lastTid = max(serverTid, c.lastTid)
	c.mu.Unlock()
	c.log.Debug("connected", "server", addr, "last_tid", serverTid)
	return cn, nil
}

func oidList(v []any) []storage.Oid {
	oids := make([]storage.Oid, 0, len(v))
	for _, x := range v {
		if b, ok := x.([]byte); ok && len(b) == 8 {
			oids = append(oids, storage.Oid(be64(b)))
		}
	}
	return oids
}

// notified handles the server's asynchronous calls.
func (c *Client) notified(cn *conn, method string, args []any) {
	if method != "invalidateTransaction" || len(args) != 2 {
		return // info and others carry nothing the client needs
	}
	tid := tidValue(args[0])
	list, _ := zeo.AsSeq(args[1])
	oids := oidList(list)
	c.cache.invalidate(tid, oids)
	c.mu.Lock()
	c.lastTid = max(c.lastTid, tid)
	c.mu.Unlock()
	if c.opts.OnInvalidate != nil {
		c.opts.OnInvalidate(Invalidation{Tid: tid, Oids: oids})
	}
}

func (c *Client) setConn(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = cn
	if cn != nil {
		close(c.connected)
	} else {
		c.connected = make(chan struct{})
	}
}

// maintain waits for the connection to end and reconnects with backoff.
func (c *Client) maintain(cn *conn) {
	defer c.wg.Done()
	for {
		select {
		case <-cn.done:
		case <-c.ctx.Done():
			cn.close(ErrClosed)
			return
		}
		c.setConn(nil)
		c.log.Warn("disconnected", "server", cn.addr, "reason", cn.err)
		delay := c.opts.MinBackoff
		for {
			var err error
			cn, err = c.connectOnce(c.ctx)
			if err == nil {
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			c.log.Debug("reconnect failed", "error", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-c.ctx.Done():
				return
			}
			delay = min(2*delay, c.opts.MaxBackoff)
		}
		c.setConn(cn)
		c.log.Info("reconnected", "server", cn.addr)
	}
}

// current returns the connection, waiting for one until ctx is done.
func (c *Client) current(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, ready, closed := c.conn, c.connected, c.closed
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if cn != nil {
			return cn, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", ErrDisconnected, ctx.Err())
		}
	}
}

// call runs a synchronous call on the current connection.
func (c *Client) call(ctx context.Context, method string, args ...any) (any, error) {
	cn, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	return cn.call(ctx, method, args...)
}

// Close disconnects and stops reconnecting.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// LastTransaction returns the newest tid the client knows of.
func (c *Client) LastTransaction() storage.Tid {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastTid
}

// Load returns the current data and serial of oid, from the cache when
// it is there.
func (c *Client) Load(ctx context.Context, oid storage.Oid) ([]byte, storage.Tid, error) {
	if data, serial, ok := c.cache.get(oid); ok {
		return data, serial, nil
	}
	token := c.cache.beginLoad(oid)
	rev, ok, err := c.loadBefore(ctx, oid, storage.MaxTid)
	if err != nil || !ok {
		c.cache.endLoad(oid, token, nil, 0)
		if err == nil {
			err = &storage.NoObjectError{Oid: oid}
		}
		return nil, 0, err
	}
	c.cache.endLoad(oid, token, rev.Data, rev.Tid)
	return rev.Data, rev.Tid, nil
}

// LoadBefore returns the revision of oid current just before tid; ok is
// false if there is none.
func (c *Client) LoadBefore(ctx context.Context, oid storage.Oid, tid storage.Tid) (storage.Revision, bool, error) {
	return c.loadBefore(ctx, oid, tid)
}

func (c *Client) loadBefore(ctx context.Context, oid storage.Oid, tid storage.Tid) (storage.Revision, bool, error) {
	v, err := c.call(ctx, "loadBefore", oid.Bytes(), tid.Bytes())
	if err != nil || v == nil {
		return storage.Revision{}, false, err
	}
	t, ok := zeo.AsSeq(v)
	if !ok || len(t) != 3 {
		return storage.Revision{}, false, fmt.Errorf("loadBefore: unexpected reply %v", v)
	}
	data, _ := t[0].([]byte)
	return storage.Revision{Data: data, Tid: tidValue(t[1]), NextTid: tidValue(t[2])}, true, nil
}

// NewOids allocates n object ids (at most 100 per call).
func (c *Client) NewOids(ctx context.Context, n int) ([]storage.Oid, error) {
	v, err := c.call(ctx, "new_oids", int64(n))
	if err != nil {
		return nil, err
	}
	list, ok := zeo.AsSeq(v)
	if !ok {
		return nil, fmt.Errorf("new_oids: unexpected reply %v", v)
	}
	return oidList(list), nil
}

// Ping waits for a round trip to the server.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.call(ctx, "ping")
	return err
}

// CachedObjects returns how many objects the cache holds.
func (c *Client) CachedObjects() int { return c.cache.len() }

// TxnMeta is a transaction's metadata.
type TxnMeta struct {
	User        string
	Description string
	// Extension is the transaction's extension dict (kept in sorted key
	// order on the wire).
	Extension map[string]any
}

// Txn collects the changes of one transaction until Commit.
type Txn struct {
	c      *Client
	meta   TxnMeta
	stores []txnStore
	checks []txnStore
}

type txnStore struct {
	oid    storage.Oid
	serial storage.Tid
	data   []byte
}

// Begin starts collecting a transaction.
func (c *Client) Begin(meta TxnMeta) *Txn { return &Txn{c: c, meta: meta} }

// Store records a new revision of oid based on serial (0 for a new object).
func (t *Txn) Store(oid storage.Oid, serial storage.Tid, data []byte) {
	t.stores = append(t.stores, txnStore{oid, serial, data})
}

// CheckCurrent makes the commit fail with a read conflict unless serial
// is still oid's current revision.
func (t *Txn) CheckCurrent(oid storage.Oid, serial storage.Tid) {
	t.checks = append(t.checks, txnStore{oid: oid, serial: serial})
}

// Commit sends the transaction and returns its tid. A write conflict is a
// *storage.ConflictError (nothing committed); a lost connection before
// the vote answered is ErrDisconnected (nothing committed); one after the
// vote succeeded is *OutcomeUnknownError.
func (t *Txn) Commit(ctx context.Context) (storage.Tid, error) {
	c := t.c
	if c.opts.ReadOnly {
		return 0, ErrReadOnly
	}
	// Concurrent commits through one client take turns.
	select {
	case c.txnSlot <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-c.txnSlot }()
	cn, err := c.current(ctx)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.txnSeq++
	id := c.txnSeq
	c.mu.Unlock()
	ext := zeo.NewDict()
	keys := make([]string, 0, len(t.meta.Extension))
	for k := range t.meta.Extension {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ext.Set(k, t.meta.Extension[k])
	}
	// The transaction goes out in one write, ending with the vote.
	frames := make([][]byte, 0, 1+len(t.stores)+len(t.checks))
	queue := func(method string, args ...any) error {
		f, err := cn.asyncFrame(method, args...)
		frames = append(frames, f)
		return err
	}
	if err := queue("tpc_begin", id, []byte(t.meta.User), []byte(t.meta.Description), ext, nil, " "); err != nil {
		return 0, err
	}
	for _, s := range t.stores {
		if err := queue("storea", s.oid.Bytes(), s.serial.Bytes(), s.data, id); err != nil {
			return 0, err
		}
	}
	for _, s := range t.checks {
		if err := queue("checkCurrentSerialInTransaction", s.oid.Bytes(), s.serial.Bytes(), id); err != nil {
			return 0, err
		}
	}
	v, err := cn.callAfter(ctx, frames, "vote", id)
	if err != nil {
		_, _ = cn.call(ctx, "tpc_abort", id)
		return 0, err
	}
	if conflicts, _ := zeo.AsSeq(v); len(conflicts) > 0 {
		_, _ = cn.call(ctx, "tpc_abort", id)
		return 0, conflictError(conflicts[0], false)
	}
	v, err = cn.call(ctx, "tpc_finish", id)
	if err != nil {
		if errors.Is(err, ErrDisconnected) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return 0, &OutcomeUnknownError{Err: err}
		}
		return 0, err
	}
	tid := tidValue(v)
	for _, s := range t.stores {
		c.cache.storeCommitted(s.oid, s.data, tid)
	}
	c.mu.Lock()
	c.lastTid = max(c.lastTid, tid)
	c.mu.Unlock()
	return tid, nil
}
