package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// zeoConn is one client connection.
type zeoConn struct {
	srv        *ZEOService
	nc         net.Conn
	log        hclog.Logger
	out        *outQueue
	codec      zeo.Codec // the encoding the client chose in the handshake
	registered atomic.Bool
	readOnly   bool // registered read-only

	// mu guards txn: the reader and a vote in progress both use it.
	mu  sync.Mutex
	txn *zeoTxn

	// corked is set while the reader dispatches a call with another
	// already buffered behind it: its answer waits for theirs.
	corked bool

	iterators map[int64]*zeoIterator
	nextIter  int64
}

// readBufferSize is the size of a connection's read buffer; larger
// frames are read straight into their own buffer.
const readBufferSize = 32 << 10

// protocolError reports a peer that broke the protocol. It closes the
// connection, except when a synchronous method's arguments have the wrong
// shape: that becomes a TypeError reply.
type protocolError struct{ reason string }

func (e *protocolError) Error() string { return e.reason }

func protoErrorf(format string, args ...any) error {
	return &protocolError{reason: fmt.Sprintf(format, args...)}
}

func (c *zeoConn) serve(ctx context.Context) {
	defer c.srv.dropConn(c)
	defer c.nc.Close()
	writerDone := make(chan error, 1)
	go func() {
		err := c.out.writeTo()
		// A drained, closed queue ends the connection (closeAfterReplies).
		c.nc.Close()
		writerDone <- err
	}()
	err := c.readLoop(ctx)
	c.abortTxn()
	c.out.close()
	if werr := <-writerDone; err == nil && werr != nil && !isEOF(werr) {
		err = werr
	}
	var pe *protocolError
	switch {
	case err == nil || isEOF(err) || errors.Is(err, syscall.ECONNRESET):
		// A client closing its socket with notifications unread resets
		// the connection: an ordinary departure too.
		c.log.Debug("client disconnected")
	case errors.As(err, &pe):
		c.log.Warn("closing connection", "reason", pe.reason)
	default:
		c.log.Warn("closing connection", "error", err)
	}
}

// closeAfterReplies ends the connection once the replies queued so far
// are written.
func (c *zeoConn) closeAfterReplies() { c.out.close() }

func (c *zeoConn) readLoop(ctx context.Context) error {
	// Buffered, so that a small frame costs one read system call, not
	// one for its length and another for its payload.
	br := bufio.NewReaderSize(c.nc, readBufferSize)
	fr := zeo.NewFrameReader(br, 0)
	if err := c.out.send(zeo.EncodeFrame(c.srv.encoding.Announcement())); err != nil {
		return err
	}
	first, err := fr.ReadFrame()
	if err != nil {
		return err
	}
	// Like ZEO, speak whichever encoding the client's reply names.
	enc, ruok, err := zeo.ParseClientHandshake(first)
	if err != nil {
		return protoErrorf("handshake: %v", err)
	}
	if ruok {
		js, err := c.srv.ruokJSON()
		if err != nil {
			return err
		}
		return c.out.send(zeo.EncodeFrame(js))
	}
	c.codec = enc.Codec()
	for {
		payload, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		msg, err := c.codec.Decode(payload)
		if err != nil {
			return protoErrorf("undecodable message: %v", err)
		}
		fr.Reuse(payload) // msg does not alias it
		// A client pipelining calls gets the answers to those read
		// together in one write.
		c.corked = frameBuffered(br)
		if err := c.dispatch(ctx, msg); err != nil {
			return err
		}
		if !c.corked {
			if err := c.out.flush(); err != nil {
				return err
			}
		}
	}
}

// frameBuffered reports whether br holds a whole frame: reading it will
// not block.
func frameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < zeo.HeaderSize {
		return false
	}
	hdr, err := br.Peek(zeo.HeaderSize)
	if err != nil {
		return false
	}
	return n-zeo.HeaderSize >= int(binary.BigEndian.Uint32(hdr))
}

// reply answers a synchronous call from the reader goroutine: at once
// (see outQueue.send), unless further calls are already buffered.
func (c *zeoConn) reply(msgid any, result any) error {
	frame, err := c.replyFrame(msgid, result)
	if err != nil {
		return err
	}
	return c.answer(frame)
}

// answer sends frames from the reader goroutine, or holds them while it
// reads the calls it has buffered.
func (c *zeoConn) answer(frames ...[]byte) error {
	if c.corked {
		return c.out.hold(frames...)
	}
	return c.out.send(frames...)
}

// replyError answers a synchronous call from the reader goroutine with an
// error reply in the shape ZEO clients expect.
func (c *zeoConn) replyError(msgid any, err error) error {
	frame, err := c.errorFrame(msgid, err)
	if err != nil {
		return err
	}
	return c.answer(frame)
}

func (c *zeoConn) replyFrame(msgid any, result any) ([]byte, error) {
	frame, err := c.codec.EncodeFrame(zeo.Message{MsgID: msgid, Flag: int64(0), Method: ".reply", Args: result})
	if err != nil {
		return nil, fmt.Errorf("encode reply: %w", err)
	}
	return frame, nil
}

func (c *zeoConn) errorFrame(msgid any, err error) ([]byte, error) {
	frame, eerr := c.codec.EncodeFrame(zeo.Message{MsgID: msgid, Flag: int64(2), Method: ".reply", Args: errorReply(err)})
	if eerr != nil {
		return nil, fmt.Errorf("encode error reply: %w", eerr)
	}
	return frame, nil
}

// handler runs one method. Synchronous handlers return the reply value or
// an error that becomes an error reply; a *protocolError closes the
// connection.
type handler func(c *zeoConn, ctx context.Context, msgid any, args []any) (any, error)

type method struct {
	fn    handler
	async bool
	// deferred handlers send their own reply when they succeed (vote,
	// later; tpc_finish, together with a notification).
	deferred bool
	// waits is set for a handler that may wait long (tpc_finish: for
	// durability, earlier transactions, synchronous secondaries), so
	// answers held for calls read before it go out first.
	waits bool
}

// methodNamed returns the server method a client calls by name.
func methodNamed(name string) (method, bool) {
	switch name {
	case "register":
		return method{fn: (*zeoConn).register}, true
	case "lastTransaction":
		return method{fn: (*zeoConn).lastTransaction}, true
	case "getInvalidations":
		return method{fn: (*zeoConn).getInvalidations}, true
	case "get_info":
		return method{fn: (*zeoConn).getInfo}, true
	case "set_client_label":
		return method{fn: (*zeoConn).setClientLabel, async: true}, true
	case "ping":
		return method{fn: (*zeoConn).ping}, true
	case "loadBefore":
		return method{fn: (*zeoConn).loadBefore}, true
	case "loadSerial":
		return method{fn: (*zeoConn).loadSerial}, true
	case "getTid":
		return method{fn: (*zeoConn).getTid}, true
	case "new_oids":
		return method{fn: (*zeoConn).newOids}, true
	case "tpc_begin":
		return method{fn: (*zeoConn).tpcBegin, async: true}, true
	case "storea":
		return method{fn: (*zeoConn).storea, async: true}, true
	case "checkCurrentSerialInTransaction":
		return method{fn: (*zeoConn).checkCurrentSerial, async: true}, true
	case "deleteObject":
		return method{fn: (*zeoConn).deleteObject, async: true}, true
	case "restorea":
		return method{fn: (*zeoConn).restorea, async: true}, true
	case "undoa":
		return method{fn: (*zeoConn).undoa, async: true}, true
	case "vote":
		return method{fn: (*zeoConn).vote, deferred: true}, true
	case "tpc_finish":
		return method{fn: (*zeoConn).tpcFinish, deferred: true, waits: true}, true
	case "tpc_abort":
		return method{fn: (*zeoConn).tpcAbort}, true
	case "history":
		return method{fn: (*zeoConn).history}, true
	case "undoLog":
		return method{fn: (*zeoConn).undoLog}, true
	case "undoInfo":
		return method{fn: (*zeoConn).undoInfo}, true
	case "record_iternext":
		return method{fn: (*zeoConn).recordIternext}, true
	case "iterator_start":
		return method{fn: (*zeoConn).iteratorStart}, true
	case "iterator_next":
		return method{fn: (*zeoConn).iteratorNext}, true
	case "iterator_record_start":
		return method{fn: (*zeoConn).iteratorRecordStart}, true
	case "iterator_record_next":
		return method{fn: (*zeoConn).iteratorRecordNext}, true
	case "iterator_gc":
		return method{fn: (*zeoConn).iteratorGC, async: true}, true
	case "server_status":
		return method{fn: (*zeoConn).serverStatus}, true
	}
	return method{}, false
}

func (c *zeoConn) dispatch(ctx context.Context, msg zeo.Message) error {
	if msg.Method == ".reply" {
		// The client's heartbeat, (-1, 0, ".reply", None): ignore it.
		return nil
	}
	m, ok := methodNamed(msg.Method)
	if !ok {
		return protoErrorf("unknown method %q", msg.Method)
	}
	if !c.registered.Load() && msg.Method != "register" {
		return protoErrorf("%s called before register", msg.Method)
	}
	args, ok := zeo.AsSeq(msg.Args)
	if !ok {
		return protoErrorf("%s: arguments are not a tuple", msg.Method)
	}
	async := zeo.Truthy(msg.Flag)
	if async != m.async {
		return protoErrorf("%s called %s", msg.Method, map[bool]string{true: "asynchronously", false: "synchronously"}[async])
	}
	if m.waits {
		if err := c.out.flush(); err != nil {
			return err
		}
	}
	result, err := m.fn(c, ctx, msg.MsgID, args)
	var pe *protocolError
	switch {
	case errors.As(err, &pe) && m.async:
		return err
	case errors.As(err, &pe):
		// Arguments of the wrong shape: like any exception raised by a
		// synchronous method, ZEO answers with an error reply and keeps
		// the connection.
		return c.replyError(msg.MsgID, &typeError{fmt.Sprintf("%s: %s", msg.Method, pe.reason)})
	case m.async:
		if err != nil {
			// ZEO closes a connection whose asynchronous call fails.
			return protoErrorf("%s failed: %v", msg.Method, err)
		}
		return nil
	case m.deferred && err == nil:
		return nil
	case err != nil:
		return c.replyError(msg.MsgID, err)
	}
	return c.reply(msg.MsgID, result)
}

// argsN checks the argument count.
func argsN(name string, args []any, min, max int) error {
	if len(args) < min || len(args) > max {
		return protoErrorf("%s: expected %d..%d arguments, got %d", name, min, max, len(args))
	}
	return nil
}

func argOid(name string, v any) (storage.Oid, error) {
	b, ok := v.([]byte)
	if !ok || len(b) != 8 {
		return 0, protoErrorf("%s: expected an 8-byte oid, got %T", name, v)
	}
	return storage.Oid(u64(b)), nil
}

func argTid(name string, v any) (storage.Tid, error) {
	b, ok := v.([]byte)
	if !ok || len(b) != 8 {
		return 0, protoErrorf("%s: expected an 8-byte tid, got %T", name, v)
	}
	return storage.Tid(u64(b)), nil
}

// argOptTid accepts a tid or None (0).
func argOptTid(name string, v any) (storage.Tid, error) {
	if v == nil {
		return 0, nil
	}
	return argTid(name, v)
}

func argBytes(name string, v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, protoErrorf("%s: expected bytes, got %T", name, v)
	}
	return b, nil
}

func argInt(name string, v any) (int64, error) {
	i, ok := zeo.AsInt(v)
	if !ok {
		return 0, protoErrorf("%s: expected an integer, got %T", name, v)
	}
	return i, nil
}

func u64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// optTidValue is a tid for the wire, or None for 0.
func optTidValue(t storage.Tid) any {
	if t == 0 {
		return nil
	}
	return t.Bytes()
}
