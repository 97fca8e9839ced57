package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
	"github.com/zrs-go/zrs/wire/zrs"
)

// FeedConfig configures a Feed.
type FeedConfig struct {
	Storage *storage.FileStorage
	Logger  hclog.Logger
	// KeepAlive is how often an idle zrs-go/1 stream carries a heartbeat.
	KeepAlive time.Duration
	// Epoch returns the node's current epoch (0 in static mode).
	Epoch func() uint64
	// OnAck is told when a secondary has durably applied a transaction.
	OnAck func(node string, tid storage.Tid)

	// Synchronous replication (sync.go), in force once the storage's
	// commit gate is Gate(). Synchronous is how many secondaries must
	// durably hold a commit before it is acknowledged.
	Synchronous int
	// Strict makes commits wait, up to CommitTimeout, for Synchronous
	// acknowledgements, then fail with ErrSyncTimeout; otherwise the
	// primary degrades to asynchronous after SyncGrace.
	Strict bool
	// CommitTimeout bounds a strict wait (DefaultCommitTimeout).
	CommitTimeout time.Duration
	// SyncGrace is how long a commit waits for lagging members before
	// they are dropped (DefaultSyncGrace).
	SyncGrace time.Duration
	// OnSyncChange records a new member list (the sync znode). It runs
	// before the commit that needs the change is released; an error
	// keeps the commit invisible.
	OnSyncChange func(ctx context.Context, members []string) error
}

// Feed serves the replication stream of a storage to secondaries: stock
// zc.zrs secondaries speak zrs2.0, ours zrs-go/1, on the same port. Each
// secondary gets its own stream, read lazily from the data file and woken
// by each commit; a slow secondary only slows its own stream (TCP flow
// control), never the primary's memory.
type Feed struct {
	cfg FeedConfig
	log hclog.Logger

	mu    sync.Mutex
	conns map[net.Conn]string // connection → secondary name
	lags  map[string]*secondaryLag
	wg    sync.WaitGroup

	// Synchronous replication state guarded by mu: acknowledgements
	// (kept after a secondary disconnects: it still holds what it
	// acknowledged), streams per secondary, a channel closed when either
	// changes, and copies of the member list and last release.
	acked      map[string]storage.Tid
	connected  map[string]int
	ackChanged chan struct{}
	members    []string
	syncKnown  bool // members was recorded
	released   storage.Tid
	syncOn     bool // Gate was called, StopSync was not

	// syncMu serializes sync decisions and recording; it guards sync.
	syncMu sync.Mutex
	sync   syncSet
}

// SecondaryLag is what the primary knows of one of its secondaries
// (zrs-go/1 secondaries acknowledge what they have durably applied).
type SecondaryLag struct {
	// Acked is the last transaction the secondary durably applied.
	Acked storage.Tid
	// Transactions were sent to the secondary and not yet acknowledged.
	Transactions int
	// Seconds is how much older Acked is than the newest transaction sent.
	Seconds float64
	// Connected reports that the secondary is streaming now.
	Connected bool
}

// secondaryLag tracks the transactions sent and not yet acknowledged.
type secondaryLag struct {
	acked   storage.Tid
	unacked []storage.Tid
}

// handshakeTimeout bounds how long a secondary may take to say who it is.
const handshakeTimeout = 30 * time.Second

// writeTimeout bounds one flush to a secondary that stopped reading.
const writeTimeout = time.Minute

// NewFeed returns a feed for cfg.Storage.
func NewFeed(cfg FeedConfig) *Feed {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 10 * time.Second
	}
	if cfg.Epoch == nil {
		cfg.Epoch = func() uint64 { return 0 }
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = DefaultCommitTimeout
	}
	if cfg.SyncGrace <= 0 {
		cfg.SyncGrace = DefaultSyncGrace
	}
	return &Feed{cfg: cfg, log: cfg.Logger, conns: make(map[net.Conn]string), lags: make(map[string]*secondaryLag),
		acked: make(map[string]storage.Tid), connected: make(map[string]int), ackChanged: make(chan struct{})}
}

// Serve accepts secondaries on ln until ctx is done. On the way out each
// stream first sends what is already committed, then closes.
func (f *Feed) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var err error
	for {
		var nc net.Conn
		if nc, err = ln.Accept(); err != nil {
			break
		}
		f.mu.Lock()
		f.conns[nc] = nc.RemoteAddr().String()
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer func() {
				f.mu.Lock()
				delete(f.conns, nc)
				f.mu.Unlock()
				nc.Close()
			}()
			log := f.log.With("secondary", nc.RemoteAddr().String())
			if err := f.serveConn(ctx, nc, log); err != nil && !isEOF(err) && ctx.Err() == nil {
				log.Warn("replication stream ended", "error", err)
			} else {
				log.Info("replication stream closed")
			}
		}()
	}
	f.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("replication feed: accept: %w", err)
}

// Lags reports the replication lag of each zrs-go/1 secondary by name.
func (f *Feed) Lags() map[string]SecondaryLag {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]SecondaryLag, len(f.lags))
	for name, l := range f.lags {
		sl := SecondaryLag{Acked: l.acked, Transactions: len(l.unacked), Connected: f.connected[name] > 0}
		if n := len(l.unacked); n > 0 {
			sl.Seconds = max(0, l.unacked[n-1].Seconds()-l.acked.Seconds())
		}
		out[name] = sl
	}
	return out
}

func (f *Feed) noteSent(node string, tid storage.Tid) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.lags[node]; l != nil {
		l.unacked = append(l.unacked, tid)
	}
}

func (f *Feed) noteAcked(node string, tid storage.Tid) {
	f.mu.Lock()
	if tid > f.acked[node] {
		f.acked[node] = tid
		f.signalAcks()
	}
	join := f.mayJoin(node)
	if l := f.lags[node]; l != nil {
		l.acked = max(l.acked, tid)
		i := 0
		for i < len(l.unacked) && l.unacked[i] <= tid {
			i++
		}
		l.unacked = l.unacked[i:]
	}
	f.mu.Unlock()
	if join {
		f.recordJoins()
	}
}

// signalAcks wakes gate calls waiting for acknowledgements. The caller
// holds f.mu.
func (f *Feed) signalAcks() {
	close(f.ackChanged)
	f.ackChanged = make(chan struct{})
}

// noteStreaming records that a zrs-go/1 secondary starts (true) or stops
// streaming, having durably applied everything up to last when it starts.
func (f *Feed) noteStreaming(node string, start bool, last storage.Tid) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if start {
		f.connected[node]++
		// It may have rewound since it last acknowledged.
		f.acked[node] = last
	} else if f.connected[node]--; f.connected[node] <= 0 {
		delete(f.connected, node)
		if slices.Contains(f.members, node) {
			// Dropped at the next commit it does not acknowledge.
			f.log.Warn("sync member disconnected", "secondary", node, "acked", f.acked[node], "members", f.members)
		}
	}
	f.signalAcks()
}

// Secondaries returns the connected secondaries by address or name.
func (f *Feed) Secondaries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.conns))
	for _, name := range f.conns {
		out = append(out, name)
	}
	return out
}

func (f *Feed) serveConn(ctx context.Context, nc net.Conn, log hclog.Logger) error {
	br := bufio.NewReader(nc)
	fr := zeo.NewFrameReader(br, zrs.MaxFrameSize)
	nc.SetReadDeadline(time.Now().Add(handshakeTimeout))
	first, err := fr.ReadFrame()
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	proto, err := zrs.IdentifyHandshake(first)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	switch proto {
	case zrs.ProtocolZRS20:
		p, err := fr.ReadFrame()
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		start, err := zrs.ParseStartTid(p)
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		nc.SetReadDeadline(time.Time{})
		return f.streamZRS20(ctx, nc, fr, start, log)
	default:
		msg, err := zrs.DecodeGo1(first)
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		hello, ok := msg.(*zrs.Hello)
		if !ok {
			return fmt.Errorf("handshake: expected Hello, got %s", msg.Go1Type())
		}
		nc.SetReadDeadline(time.Time{})
		return f.streamGo1(ctx, nc, fr, hello, log.With("secondary", hello.Node))
	}
}

// streamZRS20 serves a stock zc.zrs secondary.
func (f *Feed) streamZRS20(ctx context.Context, nc net.Conn, fr *zeo.FrameReader, start storage.Tid, log hclog.Logger) error {
	last := f.cfg.Storage.LastTransaction()
	if start > last {
		// zc.zrs raises TidTooHigh and drops the connection.
		return fmt.Errorf("secondary is ahead: its last transaction %s is after ours, %s", start, last)
	}
	log.Info("zrs2.0 secondary connected", "start", start)
	peerDone := make(chan error, 1)
	go func() {
		// After the handshake a zc.zrs secondary only sends empty
		// keep-alive messages.
		for {
			p, err := fr.ReadFrame()
			if err == nil {
				err = zrs.CheckKeepAlive(p)
			}
			if err != nil {
				peerDone <- err
				return
			}
		}
	}()
	enc := zrs.NewTxnEncoder(start)
	var buf []byte
	send := func(w io.Writer, rec *storage.TxnRecord) error {
		var err error
		if buf, err = enc.AppendFrames(buf[:0], rec); err != nil {
			return err
		}
		_, err = w.Write(buf)
		return err
	}
	// A zc.zrs secondary never acknowledges, so it only gets what
	// clients here may see.
	return f.stream(ctx, nc, start, false, send, nil, nil, peerDone)
}

// streamGo1 serves one of our secondaries after checking where it stands.
func (f *Feed) streamGo1(ctx context.Context, nc net.Conn, fr *zeo.FrameReader, hello *zrs.Hello, log hclog.Logger) error {
	answer, err := f.answer(hello)
	if err != nil {
		return err
	}
	frame, err := go1Frame(answer)
	if err != nil {
		return err
	}
	if _, err := nc.Write(frame); err != nil {
		return err
	}
	if answer.Kind != zrs.AnswerStream {
		log.Warn("not streaming to secondary", "answer", answer.Kind.String(), "tid", answer.Tid,
			"secondary_last_tid", hello.LastTid, "reason", answer.Reason)
		return nil
	}
	f.mu.Lock()
	f.conns[nc] = hello.Node
	f.lags[hello.Node] = &secondaryLag{acked: hello.LastTid}
	f.mu.Unlock()
	f.noteStreaming(hello.Node, true, hello.LastTid)
	defer func() {
		f.mu.Lock()
		delete(f.lags, hello.Node)
		f.mu.Unlock()
		f.noteStreaming(hello.Node, false, 0)
	}()
	log.Info("secondary connected", "start", hello.LastTid, "epoch", hello.Epoch)
	peerDone := make(chan error, 1)
	go func() {
		for {
			p, err := fr.ReadFrame()
			if err != nil {
				peerDone <- err
				return
			}
			msg, err := zrs.DecodeGo1(p)
			if err != nil {
				peerDone <- err
				return
			}
			switch m := msg.(type) {
			case *zrs.Ack:
				f.noteAcked(hello.Node, m.Tid)
				if f.cfg.OnAck != nil {
					f.cfg.OnAck(hello.Node, m.Tid)
				}
			case *zrs.Heartbeat:
			default:
				peerDone <- fmt.Errorf("unexpected %s from secondary", msg.Go1Type())
				return
			}
		}
	}()
	var buf []byte
	send := func(w io.Writer, rec *storage.TxnRecord) error {
		var err error
		if buf, err = zrs.AppendGo1(append(buf[:0], 0, 0, 0, 0), &zrs.Txn{Record: rec}); err != nil {
			return err
		}
		if _, err = w.Write(finishFrame(buf)); err == nil {
			f.noteSent(hello.Node, rec.Tid)
		}
		return err
	}
	heartbeat := func(w io.Writer) error {
		b, err := go1Frame(&zrs.Heartbeat{LastTid: f.cfg.Storage.LastDurable(), UnixNano: time.Now().UnixNano()})
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	// Our secondaries get transactions once durable, before the commit
	// gate publishes them, so that they can acknowledge them, and are
	// told what is visible here, so that they show no more than that: a
	// commit this node has not released may be lost in a failover. A
	// cascading node's visible tid is itself held for its upstream's
	// release, so the rule holds down a chain.
	var released storage.Tid
	release := func(w io.Writer) error {
		last := f.cfg.Storage.LastTransaction()
		if last <= released {
			return nil
		}
		b, err := go1Frame(&zrs.Release{Tid: last})
		if err != nil {
			return err
		}
		if _, err = w.Write(b); err == nil {
			released = last
		}
		return err
	}
	return f.stream(ctx, nc, hello.LastTid, true, send, heartbeat, release, peerDone)
}

// answer decides whether a secondary can be streamed to from where it is.
// It counts durable transactions not yet published as ours: a synchronous
// secondary may already hold them.
func (f *Feed) answer(h *zrs.Hello) (*zrs.Answer, error) {
	store := f.cfg.Storage
	epoch := f.cfg.Epoch()
	last := store.LastDurable()
	if h.Epoch > epoch {
		return &zrs.Answer{Kind: zrs.AnswerRefused, Epoch: epoch,
			Reason: fmt.Sprintf("secondary has seen epoch %d, newer than this node's %d", h.Epoch, epoch)}, nil
	}
	stream := func() (*zrs.Answer, error) {
		behind, err := countDurableAfter(store, h.LastTid)
		if err != nil {
			return nil, err
		}
		return &zrs.Answer{Kind: zrs.AnswerStream, Epoch: epoch, Tid: last, Behind: uint64(behind)}, nil
	}
	if h.LastTid == 0 {
		return stream()
	}
	if h.LastTid > last {
		return &zrs.Answer{Kind: zrs.AnswerAhead, Epoch: epoch, Tid: last}, nil
	}
	rec, err := durableTxnAt(store, h.LastTid)
	if err == nil && zrs.TxnHash(rec) == h.LastHash {
		return stream()
	}
	if err != nil && !errors.Is(err, storage.ErrNoTransaction) {
		return nil, err
	}
	// The secondary's last transaction is not ours. The newest tid we
	// may have in common is the one before it; the secondary checks that
	// by handshaking again from there after rewinding.
	common, err := store.TidBefore(h.LastTid)
	if err != nil {
		return nil, err
	}
	return &zrs.Answer{Kind: zrs.AnswerDiverged, Epoch: epoch, Tid: common}, nil
}

// durableTxnAt is TxnAt including durable transactions not yet published.
func durableTxnAt(store *storage.FileStorage, tid storage.Tid) (*storage.TxnRecord, error) {
	it, err := store.IterateDurable(tid)
	if err != nil {
		return nil, err
	}
	rec, err := it.Next()
	if errors.Is(err, io.EOF) || (err == nil && rec.Tid != tid) {
		return nil, fmt.Errorf("transaction %s: %w", tid, storage.ErrNoTransaction)
	}
	return rec, err
}

// countDurableAfter is CountAfter including durable transactions not yet
// published (few: those the commit gate holds).
func countDurableAfter(store *storage.FileStorage, tid storage.Tid) (int, error) {
	published := store.LastTransaction()
	n, err := store.CountAfter(tid)
	if err != nil {
		return 0, err
	}
	it, err := store.IterateDurable(max(tid, published) + 1)
	if err != nil {
		return 0, err
	}
	for {
		_, err := it.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		n++
	}
}

// stream sends every transaction after start, then each new commit, until
// ctx is done (after sending what is committed) or the peer goes away.
// With durable it sends transactions once durable, before they are
// published. idle, if set, is sent when nothing else was sent for
// KeepAlive. release, if set, is sent at the start and whenever more
// becomes visible, coalesced: once per wake-up, however many commits
// were published meanwhile, and also between the transactions of a
// backlog so that a secondary catching up publishes as it goes.
func (f *Feed) stream(ctx context.Context, nc net.Conn, start storage.Tid, durable bool,
	send func(io.Writer, *storage.TxnRecord) error, idle, release func(io.Writer) error, peerDone <-chan error) error {
	store := f.cfg.Storage
	from := start + 1
	if start == 0 {
		from = 0
	}
	iterate, changes := store.Iterate, store.Changed
	if durable {
		iterate = func(from, _ storage.Tid) (*storage.Iterator, error) { return store.IterateDurable(from) }
		changes = store.DurableChanged
	}
	it, err := iterate(from, 0)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(nc, 256<<10)
	flush := func() error {
		nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		return bw.Flush()
	}
	// published fires when more becomes visible (nil: never, without
	// release). It is fetched again before each release reads the last
	// tid, so that no publication goes unnoticed.
	var published <-chan struct{}
	releaseIfPublished := func() error { return nil }
	if release != nil {
		published = store.Changed()
		if err := release(bw); err != nil {
			return err
		}
		releaseIfPublished = func() error {
			select {
			case <-published:
				published = store.Changed()
				return release(bw)
			default:
				return nil
			}
		}
	}
	ticker := time.NewTicker(f.cfg.KeepAlive)
	defer ticker.Stop()
	sent := false
	for {
		changed := changes()
		rec, err := it.Next()
		if err == nil {
			if err := send(bw, rec); err != nil {
				return err
			}
			if err := releaseIfPublished(); err != nil {
				return err
			}
			sent = true
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		if err := releaseIfPublished(); err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil // drained
		}
		select {
		case <-changed:
		case <-published:
			// Released on the next pass, flushed with whatever else
			// became durable meanwhile.
		case <-ctx.Done():
			// Loop once more to send what was committed meanwhile.
		case err := <-peerDone:
			return err
		case <-ticker.C:
			if idle != nil && !sent {
				if err := idle(bw); err != nil {
					return err
				}
			}
			sent = false
		}
	}
}

// go1Frame encodes a zrs-go/1 message as a frame.
func go1Frame(m zrs.Go1Message) ([]byte, error) {
	b, err := zrs.AppendGo1(make([]byte, 4, 64), m)
	if err != nil {
		return nil, err
	}
	return finishFrame(b), nil
}

// finishFrame fills in the 4-byte length prefix reserved at frame[:4].
func finishFrame(frame []byte) []byte {
	n := len(frame) - 4
	frame[0], frame[1], frame[2], frame[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return frame
}

// DropSecondaries closes every replication connection, so that each
// secondary reconnects and repeats the handshake; after this node's data
// was rewound, a stream positioned in the removed part must not go on.
func (f *Feed) DropSecondaries() {
	f.mu.Lock()
	conns := make([]net.Conn, 0, len(f.conns))
	for nc := range f.conns {
		conns = append(conns, nc)
	}
	f.mu.Unlock()
	for _, nc := range conns {
		nc.Close()
	}
}
