package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// AddressSource tells the client where servers are. A static list is the
// simplest; a discovery service (ZooKeeper, see ZKSource) can implement
// it too, and then usually WatchingSource and EpochSource as well.
type AddressSource interface {
	// Addresses returns the servers to try, best first.
	Addresses(ctx context.Context) ([]string, error)
}

// WatchingSource is an AddressSource that tells when its addresses
// change. A connected client then asks for the addresses again and
// reconnects at once when its server is no longer the first address or
// is of an older epoch than the source's (a read-write client: the
// primary moved), or when it is no longer listed, or is a fallback while
// other servers are listed (a read-only client, see FallbackSource); a
// client waiting to reconnect tries again at once.
type WatchingSource interface {
	AddressSource
	// Changed returns a channel that is closed at the next change after
	// the call.
	Changed() <-chan struct{}
}

// EpochSource is an AddressSource that knows the cluster's epoch (the
// primary znode's). The client refuses servers that report a lower epoch
// than the highest it has seen from servers or from its source.
type EpochSource interface {
	AddressSource
	// Epoch returns the highest epoch known, 0 if none.
	Epoch() uint64
}

// FallbackSource is an AddressSource whose addresses may include
// fallbacks: servers to use only when no other will do, like the primary
// for read-only clients of a cluster. A read-only client connected to a
// fallback moves when its WatchingSource changes and lists other servers.
type FallbackSource interface {
	AddressSource
	// Fallback reports whether addr is listed only as a fallback.
	Fallback(addr string) bool
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
	// AllowOlderServer accepts a server whose last transaction is older
	// than the newest the client has seen (by default such a server is
	// refused with a *StaleServerError: it lost data, or it is a lagging
	// secondary). The cache is then cleared and the client follows the
	// server's history.
	AllowOlderServer bool
	Logger           hclog.Logger
}

// Client is a connection to a ZEO storage that survives server restarts.
// Its methods are safe for concurrent use.
type Client struct {
	opts   Options
	log    hclog.Logger
	source AddressSource
	cache  *cache

	mu   sync.Mutex
	conn *conn // nil while disconnected
	// connChanged is closed and replaced whenever conn is set.
	connChanged chan struct{}
	// connEpoch is the epoch conn's server reported (0: none).
	connEpoch uint64
	// epoch is the highest epoch seen, from servers and the source.
	epoch   uint64
	lastTid storage.Tid
	closed  bool
	txnSeq  int64
	// txnSlot serializes commits: a ZEO connection carries one
	// transaction at a time (ZEO's ClientStorage waits likewise).
	txnSlot chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// onClose is run by Close after the client stopped (DialCluster's
	// source).
	onClose func()
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
		opts:        opts,
		log:         opts.Logger,
		source:      opts.Source,
		cache:       newCache(opts.CacheBytes),
		connChanged: make(chan struct{}),
		txnSlot:     make(chan struct{}, 1),
	}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	if c.source == nil {
		c.source = StaticAddresses{addr}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	// Subscribe before asking for addresses, so that a change in
	// between is not missed.
	changed := c.changed()
	cn, epoch, err := c.connectOnce(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.setConn(cn, epoch)
	c.wg.Add(1)
	go c.maintain(cn, changed)
	return c, nil
}

// changed returns the source's change channel, nil for a source that
// does not watch.
func (c *Client) changed() <-chan struct{} {
	if ws, ok := c.source.(WatchingSource); ok {
		return ws.Changed()
	}
	return nil
}

// sourceEpoch returns the epoch the source knows, 0 if it knows none.
func (c *Client) sourceEpoch() uint64 {
	if es, ok := c.source.(EpochSource); ok {
		return es.Epoch()
	}
	return 0
}

// connectOnce tries every address once.
func (c *Client) connectOnce(ctx context.Context) (*conn, uint64, error) {
	addrs, err := c.source.Addresses(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("find servers: %w", err)
	}
	if len(addrs) == 0 {
		return nil, 0, fmt.Errorf("find servers: %w: no addresses", ErrDisconnected)
	}
	var errs []error
	for _, addr := range addrs {
		cn, epoch, err := c.connect(ctx, addr)
		if err == nil {
			return cn, epoch, nil
		}
		var stale *StaleServerError
		if errors.As(err, &stale) {
			c.log.Warn("refusing stale server", "server", addr, "error", stale)
		}
		errs = append(errs, err)
	}
	return nil, 0, errors.Join(errs...)
}

// connect dials addr, registers, checks that the server is not stale
// (fencing: its epoch and its last transaction) and brings the cache up
// to date. It returns the server's epoch.
func (c *Client) connect(ctx context.Context, addr string) (*conn, uint64, error) {
	// What the client knew before this connection: invalidations the
	// server sends once registered raise c.lastTid meanwhile.
	c.mu.Lock()
	known := c.lastTid
	c.mu.Unlock()
	cn, err := dialConn(ctx, addr, nil)
	if err != nil {
		return nil, 0, err
	}
	cn.onNotify = func(method string, args []any) { c.notified(cn, method, args) }
	fail := func(err error) (*conn, uint64, error) {
		cn.close(err)
		return nil, 0, fmt.Errorf("%s: %w", addr, err)
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
	// get_info tells the server's epoch (zrs_epoch; absent in static
	// mode, and from servers that are not zrs nodes). ZEO's own client
	// asks for it at every connection too.
	var serverEpoch uint64
	if v, err := cn.call(ctx, "get_info"); err == nil {
		serverEpoch = infoEpoch(v)
	} else if errors.Is(err, ErrDisconnected) || ctx.Err() != nil {
		return fail(fmt.Errorf("get_info: %w", err))
	} else {
		c.log.Debug("get_info failed; assuming no epoch", "server", addr, "error", err)
	}
	c.mu.Lock()
	seen := max(c.epoch, c.sourceEpoch())
	c.mu.Unlock()
	// A server that reports no epoch (static mode) claims none: it is
	// not fenced by epoch, only by its last transaction.
	if serverEpoch > 0 && serverEpoch < seen {
		return fail(&StaleServerError{Addr: addr, Epoch: serverEpoch, Seen: seen, LastTid: serverTid, SeenTid: known})
	}
	allowOlder := false
	switch {
	case known == 0 || known == serverTid:
	case serverTid < known && !c.opts.AllowOlderServer:
		// The server is behind what this client saw: it lost data (or
		// it is a lagging secondary; another may do).
		return fail(&StaleServerError{Addr: addr, Epoch: serverEpoch, Seen: seen, LastTid: serverTid, SeenTid: known})
	case serverTid < known:
		// Allowed: nothing it says about changes since then can be
		// trusted, so start afresh and follow its history.
		c.log.Warn("server is behind the client's cache; clearing the cache", "server", addr,
			"server_tid", serverTid, "cache_tid", known)
		c.cache.clear(serverTid)
		allowOlder = true
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
	if allowOlder && c.lastTid == known {
		c.lastTid = serverTid
	} else {
		c.lastTid = max(serverTid, c.lastTid)
	}
	c.epoch = max(c.epoch, seen, serverEpoch)
	c.mu.Unlock()
	c.log.Debug("connected", "server", addr, "last_tid", serverTid, "epoch", serverEpoch)
	return cn, serverEpoch, nil
}

// infoEpoch reads zrs_epoch from a get_info reply; 0 when absent.
func infoEpoch(v any) uint64 {
	d, ok := v.(*zeo.Dict)
	if !ok {
		return 0
	}
	e, ok := d.Get("zrs_epoch")
	if !ok {
		return 0
	}
	n, ok := zeo.AsInt(e)
	if !ok || n < 0 {
		return 0
	}
	return uint64(n)
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

func (c *Client) setConn(cn *conn, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn, c.connEpoch = cn, epoch
	close(c.connChanged)
	c.connChanged = make(chan struct{})
}

// errMoved ends a connection to a server the source no longer names.
var errMoved = errors.New("the server is no longer the one to use (failover or rebalancing)")

// maintain waits for the connection to end, or for the source to name
// another server, and reconnects with backoff. changed is the source's
// change channel from before cn's addresses were read.
func (c *Client) maintain(cn *conn, changed <-chan struct{}) {
	defer c.wg.Done()
	for {
		if !c.hold(cn, changed) {
			cn.close(ErrClosed)
			return
		}
		c.setConn(nil, 0)
		c.log.Warn("disconnected", "server", cn.addr, "reason", cn.err)
		delay := c.opts.MinBackoff
		for {
			// Subscribe before asking for addresses, so that a change
			// in between is not missed.
			changed = c.changed()
			var (
				err   error
				epoch uint64
			)
			cn, epoch, err = c.connectOnce(c.ctx)
			if err == nil {
				c.setConn(cn, epoch)
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			c.log.Debug("reconnect failed", "error", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				delay = min(2*delay, c.opts.MaxBackoff)
			case <-changed:
				// New addresses: try them at once.
				delay = c.opts.MinBackoff
			case <-c.ctx.Done():
				return
			}
		}
		c.log.Info("reconnected", "server", cn.addr)
	}
}

// hold waits while cn serves, returning true when it has ended (or was
// ended because the source names another server), false when the client
// is closing.
func (c *Client) hold(cn *conn, changed <-chan struct{}) bool {
	for {
		select {
		case <-cn.done:
			return true
		case <-c.ctx.Done():
			return false
		case <-changed:
			changed = c.changed()
			if c.moved(cn) {
				c.leave(cn)
			}
		}
	}
}

// moved reports whether the source now prefers a server other than cn's.
func (c *Client) moved(cn *conn) bool {
	ctx, cancel := context.WithTimeout(c.ctx, time.Second)
	defer cancel()
	addrs, err := c.source.Addresses(ctx)
	if err != nil || len(addrs) == 0 {
		return false // keep what works
	}
	if !c.opts.ReadOnly {
		c.mu.Lock()
		connEpoch := c.connEpoch
		c.mu.Unlock()
		switch {
		case addrs[0] != cn.addr:
			c.log.Info("the primary moved; reconnecting", "from", cn.addr, "to", addrs[0])
			return true
		case connEpoch > 0 && connEpoch < c.sourceEpoch():
			c.log.Info("the primary was elected again; reconnecting", "server", cn.addr,
				"server_epoch", connEpoch, "epoch", c.sourceEpoch())
			return true
		}
		return false
	}
	// A reader stays where it is while its server is listed (the
	// epoch fences it at its next connection), unless it is on a
	// fallback and something better is listed.
	if !slices.Contains(addrs, cn.addr) {
		c.log.Info("the server is no longer listed; reconnecting", "server", cn.addr)
		return true
	}
	if fs, ok := c.source.(FallbackSource); ok && fs.Fallback(cn.addr) {
		for _, a := range addrs {
			if !fs.Fallback(a) {
				c.log.Info("leaving the fallback server for a listed one", "server", cn.addr)
				return true
			}
		}
	}
	return false
}

// leaveWait bounds how long a move waits for a commit in progress on the
// old server to finish.
const leaveWait = 500 * time.Millisecond

// leave closes cn to reconnect elsewhere, after letting a commit in
// progress on it finish (briefly: the old server may be gone).
func (c *Client) leave(cn *conn) {
	timer := time.NewTimer(leaveWait)
	defer timer.Stop()
	select {
	case c.txnSlot <- struct{}{}:
		defer func() { <-c.txnSlot }()
	case <-timer.C:
	case <-cn.done:
	}
	cn.close(errMoved)
}

// current returns a live connection, waiting for one until ctx is done.
func (c *Client) current(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, changed, closed := c.conn, c.connChanged, c.closed
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if cn != nil {
			select {
			case <-cn.done:
				// Lost; maintain replaces it.
			default:
				return cn, nil
			}
		}
		select {
		case <-changed:
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

// callRetry runs a call that may be repeated (a read), again on the next
// connection whenever the connection is lost before the reply, until it
// gets an answer or ctx ends.
func (c *Client) callRetry(ctx context.Context, method string, args ...any) (any, error) {
	for {
		cn, err := c.current(ctx)
		if err != nil {
			return nil, err
		}
		v, err := cn.call(ctx, method, args...)
		if err == nil || !errors.Is(err, ErrDisconnected) || ctx.Err() != nil {
			return v, err
		}
		c.log.Debug("connection lost during a read; retrying once reconnected", "method", method, "server", cn.addr, "error", err)
	}
}

// Close disconnects and stops reconnecting (and, for a client made by
// DialCluster, closes its ZooKeeper source).
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
	if c.onClose != nil {
		c.onClose()
	}
	return nil
}

// Epoch returns the highest cluster epoch the client has seen, from
// servers and from its source; 0 outside a cluster.
func (c *Client) Epoch() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(c.epoch, c.sourceEpoch())
}

// ServerAddr returns the address of the server the client is connected
// to, "" while it is not.
func (c *Client) ServerAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return ""
	}
	return c.conn.addr
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
	v, err := c.callRetry(ctx, "loadBefore", oid.Bytes(), tid.Bytes())
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
	v, err := c.callRetry(ctx, "new_oids", int64(n))
	if err != nil {
		if !c.opts.ReadOnly && errors.Is(err, ErrReadOnly) {
			// Registered read-write, so the server was demoted since.
			err = &demotedError{err}
		}
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
	_, err := c.callRetry(ctx, "ping")
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

// Commit sends the transaction and returns its tid. Without a connection
// it waits for one until ctx ends. Errors:
//
//   - *storage.ConflictError: a write or read conflict; nothing was
//     committed.
//   - *NotCommittedError: no connection, the connection was lost before
//     the vote was answered (the server aborts an unfinished
//     transaction), the server was demoted since the client registered
//     (wraps ErrReadOnly), or it refused the vote transiently (wraps a
//     *TransientError). Nothing was committed; retryable.
//   - *OutcomeUnknownError: tpc_finish was sent and the connection was
//     lost (or ctx ended, or the server failed transiently) before its
//     answer: the transaction may have been committed. Retryable once
//     the caller has checked.
//
// IsRetryable tells the retryable ones apart.
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
		if errors.Is(err, ErrDisconnected) {
			err = &NotCommittedError{Stage: "connect", Err: err}
		}
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
		// The client registered read-write, so a ReadOnlyError means
		// the server was demoted since (a failover).
		if errors.Is(err, ErrDisconnected) || errors.Is(err, ErrReadOnly) || errors.Is(err, ErrTransient) {
			err = &NotCommittedError{Stage: "vote", Err: err}
		}
		return 0, err
	}
	if conflicts, _ := zeo.AsSeq(v); len(conflicts) > 0 {
		_, _ = cn.call(ctx, "tpc_abort", id)
		return 0, conflictError(conflicts[0], false)
	}
	v, err = cn.call(ctx, "tpc_finish", id)
	if err != nil {
		// A transient refusal at tpc_finish may follow a local write
		// that a later acknowledgement (or a failover) makes visible.
		if errors.Is(err, ErrDisconnected) || errors.Is(err, ErrTransient) ||
			errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
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
