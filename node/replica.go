package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
	"github.com/zrs-go/zrs/wire/zrs"
)

// Replication protocols a replica can speak to its upstream.
const (
	ReplicationGo1   = "zrs"    // our own, zrs-go/1
	ReplicationZRS20 = "zrs2.0" // a stock zc.zrs primary
)

// ErrStopped says a replica stopped replicating because continuing would
// need an operator's decision (its data is ahead of or diverged from its
// upstream); it resumes when given a new upstream.
var ErrStopped = errors.New("replication stopped")

// errRewound ends a session whose upstream found this node ahead or
// diverged once the node has rewound: the upstream closes the connection
// after such an answer, so the replica reconnects at once and handshakes
// again from its new last transaction.
var errRewound = errors.New("rewound to the upstream's history; reconnecting")

// errUnreleased is the replica's commit gate refusing transactions while
// no upstream is set that could release them (the node is being promoted,
// or detached): they stay durable and invisible.
var errUnreleased = errors.New("held until an upstream releases it")

// ReplicaConfig configures a Replica.
type ReplicaConfig struct {
	Storage *storage.FileStorage
	Logger  hclog.Logger
	// Name is this node's name, sent to the upstream.
	Name string
	// Protocol is ReplicationGo1 (default) or ReplicationZRS20.
	Protocol string
	// KeepAlive is how often an idle connection carries a keep-alive.
	KeepAlive time.Duration
	// Publish tells this node's ZEO clients about each applied
	// transaction (ZEOService.Publish).
	Publish storage.PublishFunc
	// Epoch returns the highest epoch seen (0 in static mode).
	Epoch func() uint64
	// MinBackoff and MaxBackoff bound the delay between connection
	// attempts (defaults 500 ms and 10 s).
	MinBackoff, MaxBackoff time.Duration
	// OnProgress, if set, is called about once a second while the
	// replica applies transactions (for a terminal progress line).
	OnProgress func(Progress)
	// Rewind lets the replica drop its own transactions that the upstream
	// does not have (Answer ahead or diverged), saving them to a side file
	// (storage.FileStorage.Rewind), instead of stopping. ZooKeeper mode
	// sets it: the elected primary's history is authoritative there. In
	// static mode it is false, as an operator must decide.
	Rewind bool
	// OnRewind, if set, is called after each rewind, before replication
	// resumes, so that the node can drop its ZEO clients: they may have
	// seen, and cached, transactions that no longer exist.
	OnRewind func(storage.RewindResult)
	// HoldUnreleased keeps applied transactions durable but invisible
	// until the upstream releases them (zrs-go/1 Release), so that no
	// read here sees a commit the primary has not acknowledged, which a
	// failover could lose. The replica installs a commit gate on Storage
	// for that once it streams; the node replaces or removes it when it is
	// promoted (ReleaseHold). ZooKeeper mode sets it; static mode does
	// not, and shows what it applied at once.
	HoldUnreleased bool
}

// Progress describes a catch-up in progress.
type Progress struct {
	Transactions int
	Bytes        int64
	Rate         float64 // transactions per second
	At           storage.Tid
	// Left estimates the time to catch up, 0 when unknown.
	Left time.Duration
}

// Lag describes how far a replica is behind its upstream.
type Lag struct {
	// Connected is true while a stream is established.
	Connected bool
	// LastApplied is the last transaction applied durably.
	LastApplied storage.Tid
	// UpstreamLast is the newest transaction the upstream reported.
	UpstreamLast storage.Tid
	// Seconds is how much older LastApplied is than UpstreamLast.
	Seconds float64
	// Transactions is how many transactions the upstream had, when it
	// last said, that this node has not applied yet; -1 when the
	// upstream does not say (a zc.zrs primary).
	Transactions int
}

// Replica keeps a storage a read-only copy of an upstream's: it applies
// each transaction with the upstream's tid, status, metadata and
// backpointers, making it durable and visible only once complete and
// verified, and reconnects with backoff when the connection is lost.
type Replica struct {
	cfg ReplicaConfig
	log hclog.Logger

	mu       sync.Mutex
	upstream string
	changed  chan struct{} // closed when upstream changes
	cancel   context.CancelFunc
	lag      Lag
	stopped  error

	// The hold (HoldUnreleased), guarded by mu. holding is set while the
	// replica's gate is in force: from the first streaming session until
	// ReleaseHold or a rewind. installed is set while the replica believes
	// its gate is the storage's. released is the newest tid the current
	// session's upstream released. holdChanged is closed and replaced
	// when any of them or upstream changes, waking a gate call.
	holding     bool
	installed   bool
	released    storage.Tid
	holdChanged chan struct{}
}

// NewReplica returns a replica of cfg.Storage; Run starts it.
func NewReplica(cfg ReplicaConfig, upstream string) *Replica {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Protocol == "" {
		cfg.Protocol = ReplicationGo1
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 10 * time.Second
	}
	if cfg.Epoch == nil {
		cfg.Epoch = func() uint64 { return 0 }
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	return &Replica{cfg: cfg, log: cfg.Logger, upstream: upstream, changed: make(chan struct{}),
		holdChanged: make(chan struct{})}
}

// SetUpstream points the replica at another upstream; a stream in
// progress is dropped and a stopped replica resumes.
func (r *Replica) SetUpstream(addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if addr == r.upstream {
		return
	}
	r.upstream = addr
	r.stopped = nil
	close(r.changed)
	r.changed = make(chan struct{})
	if r.cancel != nil {
		r.cancel()
	}
	// Held transactions stay held: only the next upstream's release
	// counts, and without one the gate refuses rather than blocks, so
	// that a promotion's flush returns.
	r.released = 0
	r.signalHold()
}

// signalHold wakes gate calls waiting for a release. The caller holds mu.
func (r *Replica) signalHold() {
	close(r.holdChanged)
	r.holdChanged = make(chan struct{})
}

// holdGate is the replica's commit gate: tid may become visible once the
// upstream released it. It waits while an upstream is set, even between
// connections, and refuses (the transactions stay durable and invisible,
// and the storage asks again) when none is.
func (r *Replica) holdGate(ctx context.Context, tid storage.Tid) error {
	for {
		r.mu.Lock()
		holding, released, upstream, changed := r.holding, r.released, r.upstream, r.holdChanged
		r.mu.Unlock()
		switch {
		case !holding || released >= tid:
			return nil
		case upstream == "":
			return fmt.Errorf("transaction %s: %w", tid, errUnreleased)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// installHold puts the replica's gate on the storage as a session starts
// streaming, unless the session was cancelled (its upstream changed or
// was removed: a promoted node's gate must not be replaced).
func (r *Replica) installHold(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	r.holding, r.installed = true, true
	r.signalHold()
	// Installing it again also makes the storage ask it at once about
	// what an earlier refusal left waiting.
	r.cfg.Storage.SetCommitGate(r.holdGate)
	return nil
}

// noteRelease records an upstream's Release.
func (r *Replica) noteRelease(tid storage.Tid) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tid > r.released {
		r.released = tid
		r.signalHold()
	}
}

// ReleaseHold stops holding applied transactions for an upstream's
// release, and removes the replica's gate if it is still the storage's:
// held transactions become visible. The node calls it on promotion to an
// asynchronous primary, whose history is now authoritative. A
// synchronous primary does not: it replaces the gate with its own, which
// then decides on them. The replica holds again once it streams from an
// upstream.
func (r *Replica) ReleaseHold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropHold()
}

// dropHold is ReleaseHold with mu held.
func (r *Replica) dropHold() {
	r.holding = false
	r.signalHold()
	if r.installed {
		r.installed = false
		r.cfg.Storage.SetCommitGate(nil)
	}
}

// flush makes applied transactions durable, and visible unless the
// replica holds them for its upstream's release.
func (r *Replica) flush() error {
	if r.cfg.HoldUnreleased {
		return r.cfg.Storage.FlushDurable()
	}
	return r.cfg.Storage.Flush()
}

// Lag reports how far behind the upstream the replica is.
func (r *Replica) Lag() Lag {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lag
}

// Stopped returns why replication stopped for good (ErrStopped), if it did.
func (r *Replica) Stopped() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

// Run replicates until ctx is done.
func (r *Replica) Run(ctx context.Context) error {
	delay := r.cfg.MinBackoff
	var last string
	for ctx.Err() == nil {
		r.mu.Lock()
		addr, changed := r.upstream, r.changed
		sctx, cancel := context.WithCancel(ctx)
		r.cancel = cancel
		r.mu.Unlock()
		if addr != last {
			// A new upstream (a new primary, often still taking up its
			// epoch) owes nothing to the old one's backoff.
			last, delay = addr, r.cfg.MinBackoff
		}
		if addr == "" {
			cancel()
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		applied, err := r.session(sctx, addr)
		cancel()
		r.setConnected(false)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, errRewound) {
			delay = r.cfg.MinBackoff
			continue
		}
		if errors.Is(err, ErrStopped) {
			r.log.Error("replication stopped", "upstream", addr, "error", err)
			r.mu.Lock()
			r.stopped = err
			r.mu.Unlock()
			select {
			case <-changed:
			case <-ctx.Done():
			}
			delay = r.cfg.MinBackoff
			continue
		}
		if applied > 0 {
			delay = r.cfg.MinBackoff
		}
		r.log.Warn("replication connection lost; retrying", "upstream", addr, "error", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-changed:
		case <-ctx.Done():
		}
		delay = min(2*delay, r.cfg.MaxBackoff)
	}
	// Make what was applied durable before the storage closes.
	return r.flush()
}

func (r *Replica) setConnected(c bool) {
	r.mu.Lock()
	r.lag.Connected = c
	r.mu.Unlock()
}

// session is one connection to the upstream. It returns how many
// transactions it applied.
func (r *Replica) session(ctx context.Context, addr string) (int, error) {
	network := "tcp"
	if strings.Contains(addr, "/") {
		network = "unix"
	}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	nc, err := (&net.Dialer{}).DialContext(dctx, network, addr)
	dcancel()
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	br := bufio.NewReaderSize(nc, 1<<20)
	fr := zeo.NewFrameReader(br, zrs.MaxFrameSize)
	w := &frameWriter{nc: nc}
	// Held transactions are applied: the next one must follow them.
	a := &applier{r: r, store: r.cfg.Storage, br: br, upstream: addr, lastTid: r.cfg.Storage.LastDurable(), behind: -1}
	if r.cfg.Protocol == ReplicationZRS20 {
		return a.runZRS20(ctx, fr, w)
	}
	return a.runGo1(ctx, fr, w)
}

// frameWriter writes frames from several goroutines (keep-alives, acks).
type frameWriter struct {
	mu sync.Mutex
	nc net.Conn
}

func (w *frameWriter) write(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := w.nc.Write(b)
	return err
}

// applier applies one connection's transactions.
type applier struct {
	r        *Replica
	store    *storage.FileStorage
	br       *bufio.Reader
	upstream string
	lastTid  storage.Tid // the last transaction applied, flushed or not
	// behind is the upstream's backlog for this node at the handshake,
	// less what was applied since; -1 when unknown.
	behind  int
	applied int
	// queued counts transactions finished but not yet flushed.
	queued   int
	progress progress
}

func (a *applier) runZRS20(ctx context.Context, fr *zeo.FrameReader, w *frameWriter) (int, error) {
	last := a.store.LastTransaction()
	if err := w.write(zrs.AppendHandshake(nil, last)); err != nil {
		return 0, err
	}
	a.r.log.Info("replicating from zc.zrs primary", "upstream", a.upstream, "start", last)
	a.r.mu.Lock()
	a.r.lag.Transactions = -1 // zc.zrs does not say how far behind we are
	a.r.mu.Unlock()
	a.r.setConnected(true)
	go a.keepAlive(ctx, func() error { return w.write(zrs.KeepAliveFrame()) })
	rcv := zrs.NewReceiver(last, zrs.ReceiverOptions{})
	for {
		if err := a.flushIfIdle(nil); err != nil {
			return a.applied, err
		}
		p, err := fr.ReadFrame()
		if err != nil {
			return a.applied, a.finish(err)
		}
		rec, err := rcv.Feed(p)
		if err != nil {
			return a.applied, a.finish(fmt.Errorf("input data error: %w", err))
		}
		if rec != nil {
			if err := a.apply(ctx, rec); err != nil {
				return a.applied, a.finish(err)
			}
		}
	}
}

func (a *applier) runGo1(ctx context.Context, fr *zeo.FrameReader, w *frameWriter) (int, error) {
	// Releases count only from the upstream that sent them, on this
	// connection.
	a.r.mu.Lock()
	a.r.released = 0
	a.r.mu.Unlock()
	// Durable transactions held for a release are ours: the upstream
	// checks them, and streams what follows them.
	last := a.store.LastDurable()
	hello := &zrs.Hello{Node: a.r.cfg.Name, Epoch: a.r.cfg.Epoch(), LastTid: last}
	if last != 0 {
		rec, err := durableTxnAt(a.store, last)
		if err != nil {
			return 0, fmt.Errorf("read own last transaction: %w", err)
		}
		hello.LastHash = zrs.TxnHash(rec)
	}
	b, err := go1Frame(hello)
	if err != nil {
		return 0, err
	}
	if err := w.write(b); err != nil {
		return 0, err
	}
	p, err := fr.ReadFrame()
	if err != nil {
		return 0, fmt.Errorf("handshake: %w", err)
	}
	msg, err := zrs.DecodeGo1(p)
	if err != nil {
		return 0, fmt.Errorf("handshake: %w", err)
	}
	ans, ok := msg.(*zrs.Answer)
	if !ok {
		return 0, fmt.Errorf("handshake: expected Answer, got %s", msg.Go1Type())
	}
	switch ans.Kind {
	case zrs.AnswerStream:
	case zrs.AnswerAhead:
		if a.r.cfg.Rewind {
			return 0, a.rewind(ctx, last, ans)
		}
		return 0, fmt.Errorf("%w: this node's last transaction %s is newer than upstream %s's last, %s; "+
			"the upstream may have lost transactions or be the wrong node: check it, or move this node's data file aside to start afresh",
			ErrStopped, last, a.upstream, ans.Tid)
	case zrs.AnswerDiverged:
		if a.r.cfg.Rewind {
			return 0, a.rewind(ctx, last, ans)
		}
		return 0, fmt.Errorf("%w: this node's last transaction %s is not in upstream %s's history (newest possibly common transaction %s); "+
			"this node holds transactions the upstream never had: save and truncate this node's data file after %s, or replace it with a copy of the upstream's",
			ErrStopped, last, a.upstream, ans.Tid, ans.Tid)
	default:
		// A refusal is about epochs (an upstream that has not caught up
		// with an election yet): worth retrying.
		return 0, fmt.Errorf("upstream %s refused: %s", a.upstream, ans.Reason)
	}
	if seen := a.r.cfg.Epoch(); ans.Epoch < seen {
		return 0, fmt.Errorf("upstream %s serves epoch %d, older than epoch %d already seen: not replicating from a deposed primary",
			a.upstream, ans.Epoch, seen)
	}
	a.r.log.Info("replicating", "upstream", a.upstream, "start", last, "upstream_last", ans.Tid, "behind", ans.Behind)
	a.behind = int(ans.Behind)
	a.r.mu.Lock()
	a.r.lag.Transactions = a.behind
	a.r.mu.Unlock()
	a.noteUpstream(ans.Tid)
	if a.r.cfg.HoldUnreleased {
		if err := a.r.installHold(ctx); err != nil {
			return 0, err
		}
	}
	a.r.setConnected(true)
	a.progress.start(last, ans.Tid)
	send := func(m zrs.Go1Message) error {
		b, err := go1Frame(m)
		if err != nil {
			return err
		}
		return w.write(b)
	}
	ack := func(tid storage.Tid) error { return send(&zrs.Ack{Tid: tid}) }
	go a.keepAlive(ctx, func() error {
		return send(&zrs.Heartbeat{LastTid: a.store.LastDurable(), UnixNano: time.Now().UnixNano()})
	})
	for {
		if err := a.flushIfIdle(ack); err != nil {
			return a.applied, err
		}
		p, err := fr.ReadFrame()
		if err != nil {
			return a.applied, a.finish(err)
		}
		msg, err := zrs.DecodeGo1(p)
		if err != nil {
			return a.applied, a.finish(fmt.Errorf("input data error: %w", err))
		}
		switch m := msg.(type) {
		case *zrs.Txn:
			a.noteUpstream(m.Record.Tid)
			if err := a.apply(ctx, m.Record); err != nil {
				return a.applied, a.finish(err)
			}
		case *zrs.Heartbeat:
			a.noteUpstream(m.LastTid)
		case *zrs.Release:
			a.r.noteRelease(m.Tid)
		default:
			return a.applied, a.finish(fmt.Errorf("unexpected %s from upstream", msg.Go1Type()))
		}
	}
}

// rewind drops this node's transactions after the newest one the
// upstream's answer allows: for ahead, Answer.Tid is the upstream's last
// tid; for diverged, the newest tid the two may have in common. Neither
// need be a tid of this node's, so the node rewinds to its own newest
// transaction at or before it. Whether that one is really common is only
// known from the next handshake, which may answer diverged again, further
// back; every round strictly shortens the file, so this ends.
func (a *applier) rewind(ctx context.Context, last storage.Tid, ans *zrs.Answer) error {
	if seen := a.r.cfg.Epoch(); ans.Epoch < seen {
		// Only the current primary's history may replace ours.
		return fmt.Errorf("upstream %s serves epoch %d, older than epoch %d already seen: not rewinding to a deposed primary's history",
			a.upstream, ans.Epoch, seen)
	}
	// Rewinding works on published transactions: held ones must not
	// block it, so the gate goes and they are published; those the
	// upstream lacks are removed below, and the replica holds again once
	// it streams.
	a.r.mu.Lock()
	a.r.dropHold()
	a.r.mu.Unlock()
	if err := a.store.Flush(); err != nil {
		return fmt.Errorf("rewind: publish held transactions: %w", err)
	}
	target := last
	if ans.Tid < last {
		var err error
		if target, err = a.store.TidBefore(ans.Tid + 1); err != nil {
			return fmt.Errorf("rewind: find this node's last transaction at or before %s: %w", ans.Tid, err)
		}
	}
	if target >= last {
		// Nothing of ours is after the answer's tid: rewinding cannot
		// help, and retrying would loop.
		return fmt.Errorf("%w: upstream %s answered %s at %s, which does not precede this node's last transaction %s",
			ErrStopped, a.upstream, ans.Kind, ans.Tid, last)
	}
	res, err := a.store.Rewind(ctx, target)
	if err != nil {
		if errors.Is(err, storage.ErrTransactionInProgress) || ctx.Err() != nil {
			return err // retried after a backoff, or with the new upstream
		}
		// Each attempt may leave a side file; do not repeat a failure.
		return fmt.Errorf("%w: %w", ErrStopped, err)
	}
	a.r.log.Warn("rewound data that the upstream does not have", "upstream", a.upstream,
		"answer", ans.Kind.String(), "upstream_tid", ans.Tid, "tid", res.LastTid,
		"removed_transactions", res.Removed, "side_file", res.SideFile)
	a.r.mu.Lock()
	a.r.lag.LastApplied = res.LastTid
	a.r.mu.Unlock()
	if a.r.cfg.OnRewind != nil {
		a.r.cfg.OnRewind(res)
	}
	return errRewound
}

// flushBatch bounds how many transactions share one fsync while catching up.
const flushBatch = 1000

// flushIfIdle makes applied transactions durable and visible when no more
// input is already buffered (or the batch is full), then acknowledges.
func (a *applier) flushIfIdle(ack func(storage.Tid) error) error {
	if a.queued == 0 || (a.br.Buffered() > 0 && a.queued < flushBatch) {
		return nil
	}
	// Acknowledge only what is durable; with the hold it becomes
	// visible when the upstream releases it, which it does only after
	// this acknowledgement.
	if err := a.r.flush(); err != nil {
		return err
	}
	a.queued = 0
	last := a.store.LastDurable()
	a.r.mu.Lock()
	a.r.lag.LastApplied = last
	a.r.lag.Seconds = max(0, a.r.lag.UpstreamLast.Seconds()-last.Seconds())
	a.r.lag.Transactions = a.behind
	a.r.mu.Unlock()
	a.progress.report(a.r.log, last, a.r.cfg.OnProgress)
	if ack != nil {
		return ack(last)
	}
	return nil
}

// finish flushes what was applied before a connection ends.
func (a *applier) finish(err error) error {
	if a.queued > 0 {
		if ferr := a.r.flush(); ferr != nil {
			return errors.Join(err, ferr)
		}
		a.queued = 0
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("upstream closed the connection: %w", err)
	}
	return err
}

// noteUpstream records the newest tid the upstream has reported.
func (a *applier) noteUpstream(tid storage.Tid) {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	if tid > a.r.lag.UpstreamLast {
		a.r.lag.UpstreamLast = tid
	}
	a.r.lag.Seconds = max(0, a.r.lag.UpstreamLast.Seconds()-a.r.lag.LastApplied.Seconds())
}

// apply writes one upstream transaction with its own tid and status.
func (a *applier) apply(ctx context.Context, rec *storage.TxnRecord) error {
	if rec.Tid <= a.lastTid {
		return fmt.Errorf("upstream sent transaction %s, not after this node's last %s", rec.Tid, a.lastTid)
	}
	txn, err := a.store.TpcBegin(ctx, storage.TxnMeta{User: rec.User, Description: rec.Description,
		Extension: rec.Extension, Tid: rec.Tid, Status: rec.Status})
	if err != nil {
		return err
	}
	for _, d := range rec.Records {
		if err := txn.Restore(d.Oid, d.Tid, d.Data, d.DataTxn); err != nil {
			txn.TpcAbort()
			return fmt.Errorf("apply transaction %s: %w", rec.Tid, err)
		}
	}
	if err := txn.TpcVote(); err != nil {
		txn.TpcAbort()
		return fmt.Errorf("apply transaction %s: %w", rec.Tid, err)
	}
	if _, err := txn.TpcFinishQueued(a.r.cfg.Publish); err != nil {
		return fmt.Errorf("apply transaction %s: %w", rec.Tid, err)
	}
	a.lastTid = rec.Tid
	if a.behind > 0 {
		a.behind--
	}
	a.applied++
	a.queued++
	a.progress.add(rec)
	return nil
}

// keepAlive sends a keep-alive every KeepAlive until ctx is done.
func (a *applier) keepAlive(ctx context.Context, send func() error) {
	t := time.NewTicker(a.r.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := send(); err != nil {
				return
			}
		}
	}
}

// progress logs a long catch-up: transactions and bytes done, rate and
// estimated time left (from how fast the tid time advances).
type progress struct {
	began, lastLog, lastShow time.Time
	from, goal               storage.Tid
	txns                     int
	bytes                    int64
}

const (
	progressLogEvery  = 5 * time.Second
	progressShowEvery = time.Second
)

func (p *progress) start(from, goal storage.Tid) {
	now := time.Now()
	*p = progress{began: now, lastLog: now, lastShow: now, from: from, goal: goal}
}

func (p *progress) add(rec *storage.TxnRecord) {
	if p.began.IsZero() {
		p.start(0, 0)
	}
	p.txns++
	for _, d := range rec.Records {
		p.bytes += int64(len(d.Data))
	}
}

func (p *progress) snapshot(at storage.Tid, now time.Time) Progress {
	elapsed := now.Sub(p.began).Seconds()
	s := Progress{Transactions: p.txns, Bytes: p.bytes, At: at}
	if elapsed > 0 {
		s.Rate = float64(p.txns) / elapsed
	}
	if p.goal > at && p.from != 0 && at > p.from {
		if done := at.Seconds() - p.from.Seconds(); done > 0 {
			left := p.goal.Seconds() - at.Seconds()
			s.Left = time.Duration(left / done * elapsed * float64(time.Second)).Round(time.Second)
		}
	}
	return s
}

func (p *progress) report(log hclog.Logger, at storage.Tid, show func(Progress)) {
	now := time.Now()
	if show != nil && now.Sub(p.lastShow) >= progressShowEvery {
		p.lastShow = now
		show(p.snapshot(at, now))
	}
	if now.Sub(p.lastLog) < progressLogEvery {
		return
	}
	p.lastLog = now
	s := p.snapshot(at, now)
	args := []any{"transactions", s.Transactions, "bytes", s.Bytes, "rate_txn_per_s", int(s.Rate), "at", at}
	if s.Left > 0 {
		args = append(args, "eta", s.Left)
	}
	log.Info("catching up", args...)
}
