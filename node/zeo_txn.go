package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// zeoTxn is a client's transaction. Like ZEO 5, the server only logs the
// client's operations until vote, and takes the commit lock then, so a
// slow client never holds up other commits while it sends its stores.
type zeoTxn struct {
	id   any // the client's opaque transaction id
	meta storage.TxnMeta
	ops  []txnOp

	// failed is an error found while logging (a read-only server): vote
	// reports it instead of ZEO's closing the connection.
	failed error
	// voting is set while a vote waits for the commit lock or runs.
	voting bool
	cancel context.CancelFunc
	// stxn is the storage transaction after a successful vote.
	stxn *storage.Txn
	// timeout closes the connection if the client sends neither
	// tpc_finish nor tpc_abort soon enough after a successful vote: the
	// commits voted after it cannot be acknowledged until it decides.
	timeout *time.Timer
	// invalidated are the oids other clients must drop: every object
	// the transaction wrote, new ones included, as ZEO reports them.
	invalidated []storage.Oid
	// voted is when vote was called (the commit latency metric).
	voted time.Time
}

type opKind int

const (
	opStore opKind = iota
	opCheckCurrent
	opDelete
	opRestore
	opUndo
)

type txnOp struct {
	kind    opKind
	oid     storage.Oid
	serial  storage.Tid
	data    []byte
	prevTxn storage.Tid
	undoID  []byte
}

// txnFor returns the client's transaction with the given id.
func (c *zeoConn) txnFor(id any) (*zeoTxn, error) {
	if c.txn == nil || !zeo.Equal(c.txn.id, id) {
		return nil, fmt.Errorf("no transaction %v on this connection: %w", id, storage.ErrWrongTransaction)
	}
	return c.txn, nil
}

func (c *zeoConn) tpcBegin(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("tpc_begin", args, 4, 6); err != nil {
		return nil, err
	}
	user, err := argBytesOrStr("tpc_begin", args[1])
	if err != nil {
		return nil, err
	}
	desc, err := argBytesOrStr("tpc_begin", args[2])
	if err != nil {
		return nil, err
	}
	ext, err := zeo.EncodeExtension(args[3])
	if err != nil {
		return nil, protoErrorf("tpc_begin: extension: %v", err)
	}
	meta := storage.TxnMeta{User: user, Description: desc, Extension: ext}
	if len(args) >= 5 {
		if meta.Tid, err = argOptTid("tpc_begin", args[4]); err != nil {
			return nil, err
		}
	}
	if len(args) == 6 {
		status, ok := args[5].(string)
		if !ok || len(status) != 1 {
			return nil, protoErrorf("tpc_begin: status must be a one-character str, got %v", args[5])
		}
		meta.Status = status[0]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.txn != nil {
		if zeo.Equal(c.txn.id, args[0]) {
			return nil, nil // a repeated tpc_begin is ignored
		}
		return nil, fmt.Errorf("a transaction is already in progress: %w", storage.ErrWrongTransaction)
	}
	c.txn = &zeoTxn{id: args[0], meta: meta, failed: c.checkWritable()}
	c.srv.stats.activeTxns.Add(1)
	return nil, nil
}

func argBytesOrStr(name string, v any) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case string:
		return []byte(x), nil
	}
	return nil, protoErrorf("%s: expected bytes, got %T", name, v)
}

// logOp appends an operation to the transaction named by the last arg.
func (c *zeoConn) logOp(name string, id any, op txnOp) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.txnFor(id)
	if err != nil {
		return err
	}
	if t.voting || t.stxn != nil {
		return fmt.Errorf("%s after vote: %w", name, storage.ErrWrongTransaction)
	}
	t.ops = append(t.ops, op)
	return nil
}

func (c *zeoConn) storea(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("storea", args, 4, 4); err != nil {
		return nil, err
	}
	oid, err := argOid("storea", args[0])
	if err != nil {
		return nil, err
	}
	serial, err := argTid("storea", args[1])
	if err != nil {
		return nil, err
	}
	data, err := argBytes("storea", args[2])
	if err != nil {
		return nil, err
	}
	c.srv.stats.stores.Add(1)
	return nil, c.logOp("storea", args[3], txnOp{kind: opStore, oid: oid, serial: serial, data: data})
}

func (c *zeoConn) checkCurrentSerial(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("checkCurrentSerialInTransaction", args, 3, 3); err != nil {
		return nil, err
	}
	oid, err := argOid("checkCurrentSerialInTransaction", args[0])
	if err != nil {
		return nil, err
	}
	serial, err := argTid("checkCurrentSerialInTransaction", args[1])
	if err != nil {
		return nil, err
	}
	return nil, c.logOp("checkCurrentSerialInTransaction", args[2], txnOp{kind: opCheckCurrent, oid: oid, serial: serial})
}

func (c *zeoConn) deleteObject(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("deleteObject", args, 3, 3); err != nil {
		return nil, err
	}
	oid, err := argOid("deleteObject", args[0])
	if err != nil {
		return nil, err
	}
	serial, err := argTid("deleteObject", args[1])
	if err != nil {
		return nil, err
	}
	return nil, c.logOp("deleteObject", args[2], txnOp{kind: opDelete, oid: oid, serial: serial})
}

func (c *zeoConn) restorea(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("restorea", args, 5, 5); err != nil {
		return nil, err
	}
	oid, err := argOid("restorea", args[0])
	if err != nil {
		return nil, err
	}
	serial, err := argTid("restorea", args[1])
	if err != nil {
		return nil, err
	}
	var data []byte
	if args[2] != nil {
		if data, err = argBytes("restorea", args[2]); err != nil {
			return nil, err
		}
	}
	prev, err := argOptTid("restorea", args[3])
	if err != nil {
		return nil, err
	}
	return nil, c.logOp("restorea", args[4], txnOp{kind: opRestore, oid: oid, serial: serial, data: data, prevTxn: prev})
}

func (c *zeoConn) undoa(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("undoa", args, 2, 2); err != nil {
		return nil, err
	}
	id, err := argBytesOrStr("undoa", args[0])
	if err != nil {
		return nil, err
	}
	return nil, c.logOp("undoa", args[1], txnOp{kind: opUndo, undoID: id})
}

// vote takes the commit lock (waiting without blocking this connection's
// other calls), replays the logged operations into a storage transaction
// and votes. Unresolved write conflicts are returned to the client to
// resolve, as ZEO's client-conflict-resolution mode does.
func (c *zeoConn) vote(ctx context.Context, msgid any, args []any) (any, error) {
	if err := argsN("vote", args, 1, 1); err != nil {
		return nil, err
	}
	c.mu.Lock()
	t, err := c.txnFor(args[0])
	switch {
	case err != nil:
	case t.voting || t.stxn != nil:
		err = fmt.Errorf("vote called twice: %w", storage.ErrWrongTransaction)
	case t.failed != nil:
		err = t.failed
		c.clearTxn()
	default:
		err = c.checkWritable()
	}
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	vctx, cancel := context.WithCancel(ctx)
	t.voting, t.cancel = true, cancel
	t.voted = time.Now()
	ops := t.ops
	c.mu.Unlock()

	// Serve waits for votes too, so the storage is not closed under one.
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		defer cancel()
		c.srv.stats.waiting.Add(1)
		stxn, conflicts, invalidated, undone, err := c.srv.runVote(vctx, t.meta, ops)
		c.srv.stats.waiting.Add(-1)
		frame, err := c.voted(t, msgid, stxn, conflicts, invalidated, undone, err)
		if err == nil {
			// Written from here rather than by the writer goroutine:
			// later commits wait for this transaction's decision, so
			// the sooner the answer leaves, the sooner they proceed.
			err = c.out.send(frame)
		}
		if err != nil && !isEOF(err) && !errors.Is(err, io.ErrClosedPipe) {
			c.log.Warn("cannot answer vote", "error", err)
		}
	}()
	return nil, nil
}

// voted records the outcome of a vote and returns the answer to send.
func (c *zeoConn) voted(t *zeoTxn, msgid any, stxn *storage.Txn, conflicts zeo.List, invalidated, undone []storage.Oid, err error) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t.voting = false
	if c.txn != t {
		// Aborted while voting.
		if stxn != nil {
			stxn.TpcAbort()
		}
		return c.errorFrame(msgid, fmt.Errorf("transaction aborted during vote: %w", storage.ErrWrongTransaction))
	}
	switch {
	case err != nil:
		c.clearTxn()
		return c.errorFrame(msgid, err)
	case len(conflicts) > 0:
		c.srv.stats.conflicts.Add(int64(len(conflicts)))
		return c.replyFrame(msgid, conflicts)
	}
	t.stxn, t.invalidated = stxn, invalidated
	if limit := c.srv.txnLimit; limit > 0 {
		t.timeout = time.AfterFunc(limit, func() {
			c.log.Warn("closing connection: no tpc_finish or tpc_abort in time after a successful vote (later commits wait for it)",
				"tid", stxn.Tid(), "limit", limit)
			c.nc.Close()
		})
	}
	// Like ZEO, the vote answer lists the objects an undo changed.
	list := zeo.List{}
	for _, oid := range undone {
		list = append(list, oid.Bytes())
	}
	return c.replyFrame(msgid, list)
}

// runVote is the storage side of a vote: it holds the storage's commit
// lock from its TpcBegin through the storage vote. On success it returns
// the voted transaction, which waits for tpc_finish or tpc_abort.
func (z *ZEOService) runVote(ctx context.Context, meta storage.TxnMeta, ops []txnOp) (stxn *storage.Txn, conflictList zeo.List, invalidated, undone []storage.Oid, err error) {
	stxn, err = z.store.TpcBegin(ctx, meta)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	// Conflicts by oid, in the order first seen; a later successful store
	// of the same oid cancels its conflict.
	var order []storage.Oid
	conflicts := make(map[storage.Oid]*zeo.Dict)
	for _, op := range ops {
		switch op.kind {
		case opStore:
			err = stxn.Store(op.oid, op.serial, op.data)
			var ce *storage.ConflictError
			if errors.As(err, &ce) {
				if _, seen := conflicts[op.oid]; !seen {
					order = append(order, op.oid)
				}
				conflicts[op.oid] = zeo.NewDict(
					"oid", op.oid.Bytes(),
					"serials", zeo.Tuple{ce.Committed.Bytes(), ce.Given.Bytes()},
					"data", op.data,
				)
				err = nil
				continue
			}
			if err == nil {
				delete(conflicts, op.oid)
				invalidated = append(invalidated, op.oid)
			}
		case opCheckCurrent:
			err = stxn.CheckCurrentSerial(op.oid, op.serial)
		case opDelete:
			err = stxn.DeleteObject(op.oid, op.serial)
			if err == nil {
				invalidated = append(invalidated, op.oid)
			}
		case opRestore:
			err = stxn.Restore(op.oid, op.serial, op.data, op.prevTxn)
			if err == nil {
				invalidated = append(invalidated, op.oid)
			}
		case opUndo:
			var oids []storage.Oid
			oids, err = stxn.Undo(op.undoID)
			invalidated = append(invalidated, oids...)
			undone = append(undone, oids...)
		}
		if err != nil {
			stxn.TpcAbort()
			return nil, nil, nil, nil, err
		}
	}
	if len(conflicts) > 0 {
		stxn.TpcAbort()
		list := zeo.List{}
		for _, oid := range order {
			if d, ok := conflicts[oid]; ok {
				list = append(list, d)
			}
		}
		return nil, list, nil, nil, nil
	}
	if err := stxn.TpcVote(); err != nil {
		stxn.TpcAbort()
		return nil, nil, nil, nil, err
	}
	return stxn, nil, invalidated, undone, nil
}

func (c *zeoConn) tpcFinish(_ context.Context, msgid any, args []any) (any, error) {
	if err := argsN("tpc_finish", args, 1, 1); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.txnFor(args[0])
	if err != nil {
		return nil, err
	}
	if t.stxn == nil {
		return nil, fmt.Errorf("tpc_finish before a successful vote: %w", storage.ErrWrongTransaction)
	}
	if t.timeout != nil {
		// The client answered; from here the wait (for transactions
		// voted before this one) is the server's, not the client's.
		t.timeout.Stop()
	}
	if err := c.srv.fenceError(); err != nil {
		// Fenced between vote and finish: nothing is written yet, so the
		// transaction is known not to be committed.
		c.abortLocked()
		return nil, err
	}
	tid, err := t.stxn.TpcFinishWith(func(tid storage.Tid, _ []storage.Oid) {
		c.srv.invalidate(c, tid, t.invalidated)
	})
	c.clearTxn()
	if errors.Is(err, storage.ErrNotAcknowledged) {
		// Durable here but not acknowledged by synchronous secondaries:
		// it may still become visible, without an invalidation to this
		// committer, so the client must reconnect and revalidate.
		_ = c.replyError(msgid, err)
		c.closeAfterReplies()
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.srv.stats.commits.Add(1)
	c.srv.metrics.observeCommit(t.voted)
	// Like ZEO, tell the committer the new size, then reply; both go out
	// in one write.
	info, err := c.codec.EncodeFrame(zeo.NewAsync("info", zeo.NewDict("length", int64(c.srv.store.Len()), "size", c.srv.store.Size())))
	if err != nil {
		return nil, fmt.Errorf("encode info: %w", err)
	}
	reply, err := c.codec.EncodeFrame(zeo.NewReply(msgid, tid.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("encode reply: %w", err)
	}
	return nil, c.answer(info, reply)
}

func (c *zeoConn) tpcAbort(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("tpc_abort", args, 1, 1); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.txn == nil || !zeo.Equal(c.txn.id, args[0]) {
		return nil, nil // unknown or finished transactions are ignored
	}
	c.abortLocked()
	return nil, nil
}

// abortTxn aborts whatever transaction the connection has (on disconnect).
func (c *zeoConn) abortTxn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.txn != nil {
		c.abortLocked()
	}
}

func (c *zeoConn) abortLocked() {
	t := c.txn
	if t.cancel != nil {
		t.cancel()
	}
	if t.stxn != nil {
		t.stxn.TpcAbort()
	}
	c.srv.stats.aborts.Add(1)
	c.clearTxn()
}

func (c *zeoConn) clearTxn() {
	if c.txn != nil {
		c.srv.stats.activeTxns.Add(-1)
		if c.txn.timeout != nil {
			c.txn.timeout.Stop()
		}
	}
	c.txn = nil
}
