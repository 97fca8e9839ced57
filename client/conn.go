package client

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// conn is one ZEO connection: calls are multiplexed by message id and
// answered in any order; server notifications go to the onNotify hook
// in arrival order.
//
// One goroutine at a time reads and dispatches what the server sends.
// Usually that is a caller waiting for its reply, so that the reply
// reaches it without a hand-off between goroutines; a caller whose reply
// another goroutine reads gets it through its channel. Once no call has
// been made for idleRead, a background reader takes over, so that
// notifications and the end of the connection are noticed; a caller that
// wants to read interrupts it with a read deadline.
type conn struct {
	nc       net.Conn
	codec    zeo.Codec
	addr     string
	onNotify func(method string, args []any)

	// wmu guards the writing side: one caller at a time writes, and
	// frames of callers arriving meanwhile queue in wqueue for it to
	// write next, so that concurrent calls share system calls.
	wmu     sync.Mutex
	writing bool
	wqueue  [][]byte
	werr    error // the write that failed; nothing more is written

	fr   *frameReader // used only by the goroutine holding the read side
	idle *time.Timer  // starts the background reader

	mu      sync.Mutex
	pending map[int64]*pendingCall
	reader  readSide
	// interrupting is set while a caller waits for the background reader
	// to give up the read side.
	interrupting bool
	// A caller reading for itself is interrupted by a read deadline when
	// its context ends. The context last used is watched until another
	// replaces it, so that callers sharing a context (a request making
	// many calls) do not each register with it.
	watched     context.Context
	stopWatch   func() bool
	leadCtx     context.Context // the reading caller's context
	ctxDeadline bool            // the read deadline was set for leadCtx
	nextID      int64
	err         error // why the connection ended, once done is closed
	done        chan struct{}
}

// readSide tells who reads the connection.
type readSide int

const (
	readNone readSide = iota
	readCaller
	readBackground
)

// idleRead is how long the connection goes without a call before the
// background reader takes over; notifications arriving meanwhile wait in
// the socket. It is short next to anything a client waits for, and long
// next to the gaps between the calls of a busy client, whose replies the
// callers then read themselves.
const idleRead = time.Millisecond

// aLongTimeAgo is a read deadline that interrupts a read at once.
func aLongTimeAgo() time.Time { return time.Unix(1, 0) }

// pendingCall is a call waiting for its reply.
type pendingCall struct {
	ch chan callEvent // gets at most one event
	// waiting is set once the call is written and its caller waits; only
	// then may the read side be handed to it. A caller still writing
	// must not hold it: if the server in turn waited for the client to
	// read, both would wait forever.
	waiting bool
}

// callEvent is a call's result, or the read side handed to its caller.
type callEvent struct {
	value any
	err   error
	turn  bool
}

// dialTimeout bounds connecting to one server. A server whose host died
// with its address (a killed container, a powered-off machine) answers
// nothing, and without a bound the kernel's SYN retries would hold the
// client for minutes while another server could serve it.
const dialTimeout = 2 * time.Second

// dialConn connects and completes the protocol handshake.
func dialConn(ctx context.Context, addr string, onNotify func(string, []any)) (*conn, error) {
	network := "tcp"
	if strings.Contains(addr, "/") {
		network = "unix"
	}
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	// Buffered, so that a small frame costs one read system call, not
	// one for its length and another for its payload.
	fr := &frameReader{br: bufio.NewReaderSize(nc, 32<<10), max: zeo.DefaultMaxFrameSize}
	announce, err := fr.next()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: read protocol announcement: %w", addr, err)
	}
	enc, err := zeo.ParseAnnouncement(announce)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	codec := enc.Codec()
	if _, err := nc.Write(zeo.EncodeFrame(enc.Announcement())); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: handshake: %w", addr, err)
	}
	if ctx.Err() != nil {
		nc.Close()
		return nil, ctx.Err()
	}
	c := &conn{
		nc:       nc,
		codec:    codec,
		addr:     addr,
		onNotify: onNotify,
		fr:       fr,
		pending:  make(map[int64]*pendingCall),
		done:     make(chan struct{}),
	}
	c.idle = time.AfterFunc(idleRead, c.readIdle)
	return c, nil
}

// readIdle is the background reader: it reads until the connection ends
// or a caller asks for the read side.
func (c *conn) readIdle() {
	c.mu.Lock()
	if c.reader != readNone || c.isDone() {
		c.mu.Unlock()
		return
	}
	c.reader = readBackground
	c.mu.Unlock()
	for {
		msg, err := c.readMessage()
		if err == nil {
			_, _, _, err = c.dispatch(msg, 0)
		}
		c.mu.Lock()
		if c.interrupting {
			// Asked to stop: whatever the read was doing when the
			// deadline hit, the frame reader resumes it later. The
			// deadline is undone under the lock, so that no caller
			// sets it again before the read side changes hands.
			c.interrupting = false
			if derr := c.nc.SetReadDeadline(time.Time{}); derr != nil && err == nil {
				err = derr
			}
			if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				c.releaseLocked()
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			c.close(err)
			return
		}
		c.mu.Unlock()
		if err != nil {
			c.close(err)
			return
		}
	}
}

// lead reads for a caller until its own reply arrives, dispatching what
// comes before it.
func (c *conn) lead(ctx context.Context, id int64, pc *pendingCall) (any, error) {
	if err := c.watch(ctx); err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.releaseLocked()
		c.mu.Unlock()
		return nil, err
	}
	for {
		msg, err := c.readMessage()
		if err == nil {
			v, rerr, mine, derr := c.dispatch(msg, id)
			switch {
			case derr != nil:
				err = derr
			case !mine:
				continue
			default:
				if err = c.unwatch(); err != nil {
					c.close(err)
					return nil, fmt.Errorf("%w: %v", ErrDisconnected, err)
				}
				c.mu.Lock()
				c.releaseLocked()
				c.mu.Unlock()
				return v, rerr
			}
		} else if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
			// The frame reader resumes the interrupted read for the
			// next reader.
			if err = c.unwatch(); err != nil {
				c.close(err)
				return nil, fmt.Errorf("%w: %v", ErrDisconnected, err)
			}
			c.mu.Lock()
			delete(c.pending, id)
			c.releaseLocked()
			c.mu.Unlock()
			return nil, ctx.Err()
		}
		_ = c.unwatch()
		c.close(err)
		return nil, fmt.Errorf("%w: %v", ErrDisconnected, err)
	}
}

// watch arranges for the end of ctx to interrupt the caller's reads, or
// returns ctx's error if it has ended.
func (c *conn) watch(ctx context.Context) error {
	done := ctx.Done()
	if done == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leadCtx = ctx
	if c.watched != ctx {
		if c.stopWatch != nil {
			c.stopWatch()
		}
		c.watched = ctx
		c.stopWatch = context.AfterFunc(ctx, func() { c.ctxEnded(ctx) })
	}
	// A watch registered earlier may have fired before this call.
	select {
	case <-done:
		c.leadCtx = nil
		return ctx.Err()
	default:
		return nil
	}
}

// ctxEnded interrupts the reading caller if ctx is its context.
func (c *conn) ctxEnded(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leadCtx == ctx && !c.ctxDeadline {
		c.ctxDeadline = true
		_ = c.nc.SetReadDeadline(aLongTimeAgo())
	}
}

// unwatch ends the caller's reading: its context no longer interrupts
// reads, and a deadline it set is undone before another goroutine reads.
func (c *conn) unwatch() error {
	c.mu.Lock()
	c.leadCtx = nil
	set := c.ctxDeadline
	c.ctxDeadline = false
	c.mu.Unlock()
	if set {
		return c.nc.SetReadDeadline(time.Time{})
	}
	return nil
}

// releaseLocked gives up the read side: to a waiting caller if there is
// one, else, after idleRead, to the background reader.
func (c *conn) releaseLocked() {
	for _, pc := range c.pending {
		if pc.waiting {
			c.reader = readCaller
			pc.ch <- callEvent{turn: true}
			return
		}
	}
	c.reader = readNone
	if !c.isDone() {
		c.idle.Reset(idleRead)
	}
}

// readMessage reads and decodes the next message.
func (c *conn) readMessage() (zeo.Message, error) {
	payload, err := c.fr.next()
	if err != nil {
		return zeo.Message{}, err
	}
	msg, err := c.codec.Decode(payload)
	if err != nil {
		return zeo.Message{}, fmt.Errorf("undecodable message from server: %w", err)
	}
	// Decoded messages do not alias the payload: its buffer is reused.
	c.fr.reuse(payload)
	return msg, nil
}

// dispatch hands a message to whoever waits for it. mine reports the
// reply to call id, with its result v, rerr; err is a protocol error that
// ends the connection.
func (c *conn) dispatch(msg zeo.Message, id int64) (v any, rerr error, mine bool, err error) {
	if msg.Method != ".reply" {
		args, _ := zeo.AsSeq(msg.Args)
		c.onNotify(msg.Method, args)
		return nil, nil, false, nil
	}
	replyID, ok := zeo.AsInt(msg.MsgID)
	if !ok {
		return nil, nil, false, fmt.Errorf("reply with unexpected message id %v", msg.MsgID)
	}
	if flag, _ := zeo.AsInt(msg.Flag); flag != 0 {
		rerr = replyError(msg.Args)
	} else {
		v = msg.Args
	}
	c.mu.Lock()
	pc := c.pending[replyID]
	delete(c.pending, replyID)
	c.mu.Unlock()
	switch {
	case id != 0 && replyID == id:
		return v, rerr, true, nil
	case pc != nil:
		pc.ch <- callEvent{value: v, err: rerr}
	}
	// else the caller gave up
	return nil, nil, false, nil
}

func (c *conn) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// close ends the connection and fails every pending call.
func (c *conn) close(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isDone() {
		return
	}
	if err == nil {
		err = errors.New("connection closed")
	}
	c.err = err
	close(c.done)
	c.idle.Stop()
	if c.stopWatch != nil {
		c.stopWatch()
	}
	c.nc.Close()
	for id, pc := range c.pending {
		pc.ch <- callEvent{err: fmt.Errorf("%w: %v", ErrDisconnected, err)}
		delete(c.pending, id)
	}
}

// writeFrames writes frames in one system call. While another
// caller writes, the frames queue behind its write and it writes them
// next, together with any others queued meanwhile; the reply then comes
// as usual, and a failed write ends the connection and with it every
// call waiting for a reply.
func (c *conn) writeFrames(frames [][]byte) error {
	c.wmu.Lock()
	switch {
	case c.werr != nil:
		err := c.werr
		c.wmu.Unlock()
		return fmt.Errorf("%w: %v", ErrDisconnected, err)
	case c.writing:
		c.wqueue = append(c.wqueue, frames...)
		c.wmu.Unlock()
		return nil
	}
	c.writing = true
	c.wmu.Unlock()
	for {
		err := zeo.WriteEncoded(c.nc, frames)
		c.wmu.Lock()
		if err != nil {
			c.werr, c.writing, c.wqueue = err, false, nil
			c.wmu.Unlock()
			c.close(err)
			return fmt.Errorf("%w: %v", ErrDisconnected, err)
		}
		if len(c.wqueue) == 0 {
			c.writing = false
			c.wmu.Unlock()
			return nil
		}
		frames, c.wqueue = c.wqueue, nil
		c.wmu.Unlock()
	}
}

// call sends a synchronous call and waits for its reply.
func (c *conn) call(ctx context.Context, method string, args ...any) (any, error) {
	return c.callAfter(ctx, nil, method, args...)
}

// callAfter sends the frames before (asynchronous calls, see asyncFrame)
// and then a synchronous call, all in one write, and waits for the reply.
func (c *conn) callAfter(ctx context.Context, before [][]byte, method string, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // not sent: the caller has given up already
	}
	pc := &pendingCall{ch: make(chan callEvent, 1)}
	c.mu.Lock()
	if c.isDone() {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", ErrDisconnected, c.err)
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = pc
	c.mu.Unlock()
	frame, err := c.codec.EncodeFrame(zeo.Message{MsgID: id, Flag: false, Method: method, Args: zeo.Tuple(args)})
	if err == nil {
		err = c.writeFrames(append(before, frame))
	}
	if err != nil {
		c.abandon(id, pc)
		return nil, err
	}
	c.mu.Lock()
	pc.waiting = true
	select {
	case ev := <-pc.ch:
		c.mu.Unlock()
		if ev.turn {
			return c.lead(ctx, id, pc)
		}
		return ev.value, ev.err
	default:
	}
	switch c.reader {
	case readNone:
		c.reader = readCaller
		c.mu.Unlock()
		return c.lead(ctx, id, pc)
	case readBackground:
		if !c.interrupting {
			c.interrupting = true
			_ = c.nc.SetReadDeadline(aLongTimeAgo())
		}
	}
	c.mu.Unlock()
	select {
	case ev := <-pc.ch:
		if ev.turn {
			return c.lead(ctx, id, pc)
		}
		return ev.value, ev.err
	case <-ctx.Done():
		c.abandon(id, pc)
		return nil, ctx.Err()
	}
}

// abandon forgets a call whose caller gives up, passing on the read side
// if it was just handed to it.
func (c *conn) abandon(id int64, pc *pendingCall) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, id)
	select {
	case ev := <-pc.ch:
		if ev.turn {
			c.releaseLocked()
		}
	default:
	}
}

// frameReader reads length-prefixed frames (spec B.1) like
// zeo.FrameReader, but a read interrupted by a deadline can be resumed:
// a frame read in part is kept until the rest arrives.
type frameReader struct {
	br   *bufio.Reader
	max  int
	hdr  [zeo.HeaderSize]byte
	nhdr int    // header bytes read
	buf  []byte // payload read so far; nil between frames
	keep []byte // a payload buffer to reuse
}

// next returns the next frame's payload, valid until it is passed to reuse.
func (r *frameReader) next() ([]byte, error) {
	for r.nhdr < len(r.hdr) {
		n, err := r.br.Read(r.hdr[r.nhdr:])
		r.nhdr += n
		if err != nil {
			if err == io.EOF && r.nhdr > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	size := int(binary.BigEndian.Uint32(r.hdr[:]))
	if size > r.max {
		return nil, fmt.Errorf("zeo: incoming frame of %d bytes exceeds the limit of %d bytes: %w", size, r.max, zeo.ErrFrameTooLarge)
	}
	if r.buf == nil {
		// Grow only as data arrives, like zeo.FrameReader, so that a
		// huge announced size costs nothing until sent.
		if cap(r.keep) >= min(size, readChunk) {
			r.buf, r.keep = r.keep[:0], nil
		} else {
			r.buf = make([]byte, 0, min(max(size, zeo.MinReadBuffer), readChunk))
		}
	}
	for len(r.buf) < size {
		if len(r.buf) == cap(r.buf) {
			grown := make([]byte, len(r.buf), min(size, 2*cap(r.buf)))
			copy(grown, r.buf)
			r.buf = grown
		}
		n, err := r.br.Read(r.buf[len(r.buf):min(size, cap(r.buf))])
		r.buf = r.buf[:len(r.buf)+n]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	p := r.buf
	r.buf, r.nhdr = nil, 0
	return p, nil
}

// readChunk is the first allocation for a payload, and the largest
// buffer kept for reuse.
const readChunk = 64 << 10

// reuse lets the reader use p's buffer for a later frame.
func (r *frameReader) reuse(p []byte) {
	if cap(p) <= readChunk {
		r.keep = p
	}
}

// asyncFrame encodes an asynchronous call for callAfter.
func (c *conn) asyncFrame(method string, args ...any) ([]byte, error) {
	return c.codec.EncodeFrame(zeo.Message{MsgID: int64(0), Flag: true, Method: method, Args: zeo.Tuple(args)})
}

// replyError turns an error reply into a typed error.
func replyError(args any) error {
	pair, ok := zeo.AsSeq(args)
	if !ok || len(pair) != 2 {
		return &ServerError{Class: "?", Args: args}
	}
	class, _ := pair[0].(string)
	detail := pair[1]
	switch class {
	case "ZODB.POSException.POSKeyError":
		if t, ok := zeo.AsSeq(detail); ok && len(t) == 1 {
			if b, ok := t[0].([]byte); ok && len(b) == 8 {
				return &storage.NoObjectError{Oid: storage.Oid(be64(b))}
			}
		}
		return &storage.NoObjectError{}
	case "ZODB.POSException.ReadOnlyError":
		return ErrReadOnly
	case "ZODB.POSException.ConflictError", "ZODB.POSException.ReadConflictError":
		return conflictError(detail, class == "ZODB.POSException.ReadConflictError")
	case "ZODB.POSException.StorageTransactionError":
		return fmt.Errorf("%w: %v", storage.ErrWrongTransaction, detail)
	case TransientClass:
		return &TransientError{Args: detail}
	}
	return &ServerError{Class: class, Args: detail}
}

func be64(b []byte) uint64 {
	var v uint64
	for _, x := range b[:8] {
		v = v<<8 | uint64(x)
	}
	return v
}

// tidValue decodes an 8-byte tid, or 0 for None or anything else.
func tidValue(v any) storage.Tid {
	if b, ok := v.([]byte); ok && len(b) == 8 {
		return storage.Tid(be64(b))
	}
	return 0
}

// conflictError reads a conflict dict ({oid, serials: (committed, read)}),
// as error replies and vote answers carry it.
func conflictError(v any, read bool) *storage.ConflictError {
	ce := &storage.ConflictError{Read: read}
	d, ok := v.(*zeo.Dict)
	if !ok {
		return ce
	}
	if o, ok := d.Get("oid"); ok {
		if b, ok := o.([]byte); ok && len(b) == 8 {
			ce.Oid = storage.Oid(be64(b))
		}
	}
	if s, ok := d.Get("serials"); ok {
		if pair, ok := zeo.AsSeq(s); ok && len(pair) == 2 {
			ce.Committed, ce.Given = tidValue(pair[0]), tidValue(pair[1])
		}
	}
	return ce
}
