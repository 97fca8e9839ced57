package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// conn is one ZEO connection: calls are multiplexed by message id and
// answered in any order; server notifications go to the onNotify hook
// in arrival order.
type conn struct {
	nc       net.Conn
	codec    zeo.Codec
	addr     string
	onNotify func(method string, args []any)

	wmu sync.Mutex // serializes frame writes

	mu      sync.Mutex
	pending map[int64]chan callResult
	nextID  int64
	err     error // why the connection ended, once done is closed
	done    chan struct{}
}

type callResult struct {
	value any
	err   error
}

// dialConn connects and completes the protocol handshake.
func dialConn(ctx context.Context, addr string, onNotify func(string, []any)) (*conn, error) {
	network := "tcp"
	if strings.Contains(addr, "/") {
		network = "unix"
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	// Buffered, so that a small frame costs one read system call, not
	// one for its length and another for its payload.
	fr := zeo.NewFrameReader(bufio.NewReaderSize(nc, 32<<10), 0)
	announce, err := fr.ReadFrame()
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
		pending:  make(map[int64]chan callResult),
		done:     make(chan struct{}),
	}
	go c.readLoop(fr)
	return c, nil
}

func (c *conn) readLoop(fr *zeo.FrameReader) {
	var err error
	for {
		var payload []byte
		if payload, err = fr.ReadFrame(); err != nil {
			break
		}
		var msg zeo.Message
		if msg, err = c.codec.Decode(payload); err != nil {
			err = fmt.Errorf("undecodable message from server: %w", err)
			break
		}
		if msg.Method != ".reply" {
			args, _ := zeo.AsSeq(msg.Args)
			c.onNotify(msg.Method, args)
			continue
		}
		id, ok := zeo.AsInt(msg.MsgID)
		if !ok {
			err = fmt.Errorf("reply with unexpected message id %v", msg.MsgID)
			break
		}
		c.mu.Lock()
		ch := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if ch == nil {
			continue // the caller gave up
		}
		flag, _ := zeo.AsInt(msg.Flag)
		if flag != 0 {
			ch <- callResult{err: replyError(msg.Args)}
		} else {
			ch <- callResult{value: msg.Args}
		}
	}
	c.close(err)
}

// close ends the connection and fails every pending call.
func (c *conn) close(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return
	default:
	}
	if err == nil {
		err = errors.New("connection closed")
	}
	c.err = err
	close(c.done)
	c.nc.Close()
	for id, ch := range c.pending {
		ch <- callResult{err: fmt.Errorf("%w: %v", ErrDisconnected, err)}
		delete(c.pending, id)
	}
}

// writeFrames writes frames in one system call.
func (c *conn) writeFrames(frames [][]byte) error {
	bufs := net.Buffers(frames)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := bufs.WriteTo(c.nc); err != nil {
		c.close(err)
		return fmt.Errorf("%w: %v", ErrDisconnected, err)
	}
	return nil
}

// call sends a synchronous call and waits for its reply.
func (c *conn) call(ctx context.Context, method string, args ...any) (any, error) {
	return c.callAfter(ctx, nil, method, args...)
}

// callAfter sends the frames before (asynchronous calls, see asyncFrame)
// and then a synchronous call, all in one write, and waits for the reply.
func (c *conn) callAfter(ctx context.Context, before [][]byte, method string, args ...any) (any, error) {
	ch := make(chan callResult, 1)
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", ErrDisconnected, c.err)
	default:
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	frame, err := c.codec.EncodeFrame(zeo.Message{MsgID: id, Flag: false, Method: method, Args: zeo.Tuple(args)})
	if err == nil {
		err = c.writeFrames(append(before, frame))
	}
	if err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, err
	}
	select {
	case r := <-ch:
		return r.value, r.err
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, ctx.Err()
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
