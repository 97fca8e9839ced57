package node

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// valueError becomes a builtins.ValueError reply.
type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

// typeError becomes a builtins.TypeError reply: a synchronous call's
// arguments have the wrong shape.
type typeError struct{ msg string }

func (e *typeError) Error() string { return e.msg }

func (c *zeoConn) register(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("register", args, 2, 2); err != nil {
		return nil, err
	}
	name, ok := args[0].(string)
	if !ok {
		return nil, protoErrorf("register: storage name is %T, not str", args[0])
	}
	if name != c.srv.name {
		return nil, &valueError{fmt.Sprintf("unknown storage: %s", name)}
	}
	ro := zeo.Truthy(args[1])
	if !ro && c.srv.ReadOnly() {
		return nil, storage.ErrReadOnly
	}
	c.readOnly = ro
	return c.srv.register(c).Bytes(), nil
}

func (c *zeoConn) lastTransaction(_ context.Context, _ any, args []any) (any, error) {
	return c.srv.LastTid().Bytes(), nil
}

// maxInvalidationTxns bounds getInvalidations: a client further behind
// gets None and drops its cache, as with ZEO's invalidation queue.
const maxInvalidationTxns = 1000

func (c *zeoConn) getInvalidations(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("getInvalidations", args, 1, 1); err != nil {
		return nil, err
	}
	since, err := argTid("getInvalidations", args[0])
	if err != nil {
		return nil, err
	}
	last := c.srv.LastTid()
	it, err := c.srv.store.Iterate(since+1, last)
	if err != nil {
		return nil, err
	}
	seen := make(map[storage.Oid]bool)
	oids := zeo.List{}
	for n := 0; ; n++ {
		rec, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if n == maxInvalidationTxns {
			return nil, nil
		}
		for _, r := range rec.Records {
			if !seen[r.Oid] {
				seen[r.Oid] = true
				oids = append(oids, r.Oid.Bytes())
			}
		}
	}
	return zeo.Tuple{last.Bytes(), oids}, nil
}

// getInfo lists what this server implements, so clients enable exactly
// those features (blobs come later).
func (c *zeoConn) getInfo(_ context.Context, _ any, _ []any) (any, error) {
	iface := func(name string) zeo.Tuple { return zeo.Tuple{"ZODB.interfaces", name} }
	info := zeo.NewDict(
		"length", int64(c.srv.store.Len()),
		"size", c.srv.store.Size(),
		"name", c.srv.store.Path(),
		"supportsUndo", true,
		"supports_record_iternext", true,
		"interfaces", zeo.Tuple{
			iface("IStorageRestoreable"),
			iface("IStorageIteration"),
			iface("IStorageUndoable"),
			iface("IStorageCurrentRecordIteration"),
			iface("IExternalGC"),
			iface("IStorage"),
			zeo.Tuple{"zope.interface", "Interface"},
		},
	)
	// The cluster epoch, for clients that fence by it; absent in static
	// mode, so that replies stay byte-identical to ZEO's shape there.
	if epoch := c.srv.Epoch(); epoch > 0 {
		info.Set("zrs_epoch", int64(epoch))
	}
	return info, nil
}

func (c *zeoConn) setClientLabel(_ context.Context, _ any, args []any) (any, error) {
	if len(args) == 1 {
		c.log = c.log.With("label", fmt.Sprint(args[0]))
	}
	return nil, nil
}

func (c *zeoConn) ping(_ context.Context, _ any, _ []any) (any, error) { return nil, nil }

func (c *zeoConn) serverStatus(_ context.Context, _ any, _ []any) (any, error) {
	return c.srv.status(), nil
}

func (c *zeoConn) loadBefore(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("loadBefore", args, 2, 2); err != nil {
		return nil, err
	}
	oid, err := argOid("loadBefore", args[0])
	if err != nil {
		return nil, err
	}
	before, err := argTid("loadBefore", args[1])
	if err != nil {
		return nil, err
	}
	c.srv.stats.loads.Add(1)
	defer c.srv.metrics.timeLoad()()
	rev, ok, err := c.srv.store.LoadBefore(oid, before)
	if err != nil || !ok {
		return nil, err
	}
	return zeo.Tuple{rev.Data, rev.Tid.Bytes(), optTidValue(rev.NextTid)}, nil
}

func (c *zeoConn) loadSerial(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("loadSerial", args, 2, 2); err != nil {
		return nil, err
	}
	oid, err := argOid("loadSerial", args[0])
	if err != nil {
		return nil, err
	}
	serial, err := argTid("loadSerial", args[1])
	if err != nil {
		return nil, err
	}
	return c.srv.store.LoadSerial(oid, serial)
}

func (c *zeoConn) getTid(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("getTid", args, 1, 1); err != nil {
		return nil, err
	}
	oid, err := argOid("getTid", args[0])
	if err != nil {
		return nil, err
	}
	_, tid, err := c.srv.store.Load(oid)
	if err != nil {
		return nil, err
	}
	return tid.Bytes(), nil
}

func (c *zeoConn) checkWritable() error {
	if c.readOnly || c.srv.ReadOnly() {
		return storage.ErrReadOnly
	}
	return c.srv.fenceError()
}

func (c *zeoConn) newOids(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("new_oids", args, 0, 1); err != nil {
		return nil, err
	}
	n := int64(100)
	if len(args) == 1 {
		var err error
		if n, err = argInt("new_oids", args[0]); err != nil {
			return nil, err
		}
	}
	n = max(1, min(n, 100))
	if err := c.checkWritable(); err != nil {
		return nil, err
	}
	oids, err := c.srv.store.NewOids(int(n))
	if err != nil {
		return nil, err
	}
	out := make(zeo.List, len(oids))
	for i, oid := range oids {
		out[i] = oid.Bytes()
	}
	return out, nil
}

func (c *zeoConn) history(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("history", args, 1, 2); err != nil {
		return nil, err
	}
	oid, err := argOid("history", args[0])
	if err != nil {
		return nil, err
	}
	size := int64(1)
	if len(args) == 2 {
		if size, err = argInt("history", args[1]); err != nil {
			return nil, err
		}
	}
	entries, err := c.srv.store.History(oid, int(max(size, 1)))
	if err != nil {
		return nil, err
	}
	out := make(zeo.List, 0, len(entries))
	for _, e := range entries {
		d := extensionDict(e.Extension, c.log)
		d.Set("time", e.Tid.Seconds())
		d.Set("user_name", e.User)
		d.Set("description", e.Description)
		d.Set("tid", e.Tid.Bytes())
		d.Set("size", e.Size)
		out = append(out, d)
	}
	return out, nil
}

// undoEntries lists undoable transactions as ZODB's undoLog does.
func (c *zeoConn) undoEntries(first, last int64, keep func(*zeo.Dict) bool) (any, error) {
	entries, err := c.srv.store.UndoLog(int(first), int(last))
	if err != nil {
		return nil, err
	}
	out := zeo.List{}
	for _, e := range entries {
		d := zeo.NewDict(
			"id", e.ID,
			"time", e.Tid.Seconds(),
			"user_name", e.User,
			"size", e.Size,
			"description", e.Description,
		)
		for k, v := range extensionDict(e.Extension, c.log).All() {
			d.Set(k, v)
		}
		if keep == nil || keep(d) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (c *zeoConn) undoLog(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("undoLog", args, 0, 2); err != nil {
		return nil, err
	}
	first, last, err := undoRange("undoLog", args)
	if err != nil {
		return nil, err
	}
	return c.undoEntries(first, last, nil)
}

func (c *zeoConn) undoInfo(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("undoInfo", args, 0, 3); err != nil {
		return nil, err
	}
	first, last, err := undoRange("undoInfo", args[:min(len(args), 2)])
	if err != nil {
		return nil, err
	}
	var keep func(*zeo.Dict) bool
	if len(args) == 3 && args[2] != nil {
		spec, ok := args[2].(*zeo.Dict)
		if !ok {
			return nil, protoErrorf("undoInfo: specification is %T, not a dict", args[2])
		}
		keep = func(d *zeo.Dict) bool {
			for k, v := range spec.All() {
				if got, ok := d.Get(k); !ok || !zeo.Equal(got, v) {
					return false
				}
			}
			return true
		}
	}
	return c.undoEntries(first, last, keep)
}

func undoRange(name string, args []any) (first, last int64, err error) {
	first, last = 0, -20
	if len(args) >= 1 {
		if first, err = argInt(name, args[0]); err != nil {
			return
		}
	}
	if len(args) >= 2 {
		last, err = argInt(name, args[1])
	}
	return
}

func (c *zeoConn) recordIternext(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("record_iternext", args, 0, 1); err != nil {
		return nil, err
	}
	var from storage.Oid
	if len(args) == 1 && args[0] != nil {
		var err error
		if from, err = argOid("record_iternext", args[0]); err != nil {
			return nil, err
		}
	}
	oid, tid, data, next, more, err := c.srv.store.RecordIterNext(from)
	if err != nil {
		return nil, err
	}
	var nextValue any
	if more {
		nextValue = next.Bytes()
	}
	return zeo.Tuple{oid.Bytes(), tid.Bytes(), data, nextValue}, nil
}
