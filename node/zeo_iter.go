package node

import (
	"context"
	"errors"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// zeoIterator is a server-side iterator: over transactions (txns) or over
// the records of the transaction last returned by one (records).
type zeoIterator struct {
	txns    *storage.Iterator
	last    *storage.TxnRecord // the transaction last returned by txns
	records []storage.DataRecord
}

// maxIterators bounds the iterators one connection may hold.
const maxIterators = 1000

func (c *zeoConn) addIterator(it *zeoIterator) (any, error) {
	if len(c.iterators) >= maxIterators {
		return nil, protoErrorf("more than %d open iterators", maxIterators)
	}
	id := c.nextIter
	c.nextIter++
	c.iterators[id] = it
	return id, nil
}

func (c *zeoConn) iterator(name string, v any) (int64, *zeoIterator, error) {
	id, err := argInt(name, v)
	if err != nil {
		return 0, nil, err
	}
	it, ok := c.iterators[id]
	if !ok {
		return id, nil, &valueError{"unknown iterator"}
	}
	return id, it, nil
}

func (c *zeoConn) iteratorStart(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("iterator_start", args, 0, 2); err != nil {
		return nil, err
	}
	var start, stop storage.Tid
	var err error
	if len(args) >= 1 {
		if start, err = argOptTid("iterator_start", args[0]); err != nil {
			return nil, err
		}
	}
	if len(args) == 2 {
		if stop, err = argOptTid("iterator_start", args[1]); err != nil {
			return nil, err
		}
	}
	txns, err := c.srv.store.Iterate(start, stop)
	if err != nil {
		return nil, err
	}
	return c.addIterator(&zeoIterator{txns: txns})
}

func (c *zeoConn) iteratorNext(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("iterator_next", args, 1, 1); err != nil {
		return nil, err
	}
	id, it, err := c.iterator("iterator_next", args[0])
	if err != nil || it.txns == nil {
		return nil, err
	}
	rec, err := it.txns.Next()
	if errors.Is(err, io.EOF) {
		delete(c.iterators, id)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	it.last = rec
	return zeo.Tuple{rec.Tid.Bytes(), string(rec.Status), rec.User, rec.Description, extensionDict(rec.Extension, c.log)}, nil
}

func (c *zeoConn) iteratorRecordStart(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("iterator_record_start", args, 2, 2); err != nil {
		return nil, err
	}
	_, it, err := c.iterator("iterator_record_start", args[0])
	if err != nil {
		return nil, err
	}
	tid, err := argTid("iterator_record_start", args[1])
	if err != nil {
		return nil, err
	}
	if it.last == nil || it.last.Tid != tid {
		return nil, &valueError{"tid does not match the iterator's current transaction"}
	}
	return c.addIterator(&zeoIterator{records: it.last.Records})
}

func (c *zeoConn) iteratorRecordNext(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("iterator_record_next", args, 1, 1); err != nil {
		return nil, err
	}
	id, it, err := c.iterator("iterator_record_next", args[0])
	if err != nil {
		return nil, err
	}
	if len(it.records) == 0 {
		delete(c.iterators, id)
		return nil, nil
	}
	r := it.records[0]
	it.records = it.records[1:]
	var data any
	if r.Data != nil {
		data = r.Data
	}
	return zeo.Tuple{r.Oid.Bytes(), r.Tid.Bytes(), data, optTidValue(r.DataTxn)}, nil
}

func (c *zeoConn) iteratorGC(_ context.Context, _ any, args []any) (any, error) {
	if err := argsN("iterator_gc", args, 1, 1); err != nil {
		return nil, err
	}
	ids, ok := zeo.AsSeq(args[0])
	if !ok {
		return nil, protoErrorf("iterator_gc: expected a list of ids")
	}
	for _, v := range ids {
		if id, ok := zeo.AsInt(v); ok {
			delete(c.iterators, id)
		}
	}
	return nil, nil
}

// extensionDict decodes a stored extension pickle for the wire; an
// undecodable one is logged and sent as an empty dict rather than failing
// the call.
func extensionDict(ext []byte, log hclog.Logger) *zeo.Dict {
	if len(ext) == 0 {
		return zeo.NewDict()
	}
	d, err := zeo.DecodeExtension(ext)
	if err != nil {
		log.Warn("cannot decode transaction extension", "error", err)
		return zeo.NewDict()
	}
	return d
}
