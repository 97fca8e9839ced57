package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// txnMarks is a sparse, tid-ordered list of transaction positions, filled
// while scanning and committing, so that a transaction can be found
// without walking the whole file.
type txnMarks struct {
	list  []txnMark
	count int
}

type txnMark struct {
	tid Tid
	pos int64
}

// markEvery is the spacing of marks in transactions.
const markEvery = 128

func (m *txnMarks) add(tid Tid, pos int64) {
	m.count++
	if m.count%markEvery != 1 {
		return
	}
	if n := len(m.list); n > 0 && m.list[n-1].tid >= tid {
		return
	}
	m.list = append(m.list, txnMark{tid, pos})
}

// below returns the latest mark with a tid < tid.
func (m *txnMarks) below(tid Tid) (txnMark, bool) {
	i := sort.Search(len(m.list), func(i int) bool { return m.list[i].tid >= tid })
	if i == 0 {
		return txnMark{}, false
	}
	return m.list[i-1], true
}

// seekTid returns the position of the first transaction whose tid is ≥
// tid, or the committed end if there is none. It scans forward from the
// nearest mark, or, when the tid is recent, backward from the end.
func (s *FileStorage) seekTid(tid Tid) (int64, error) {
	s.mu.RLock()
	end, last := s.pos, s.lastTid
	mark, marked := s.marks.below(tid)
	s.mu.RUnlock()
	if tid > last || end <= fileHeaderSize {
		return end, nil
	}
	from := int64(fileHeaderSize)
	firstTid := Tid(0)
	if marked {
		from, firstTid = mark.pos, mark.tid
	} else {
		h, err := s.readTxnHeader(fileHeaderSize)
		if err != nil {
			return 0, err
		}
		firstTid = h.Tid
	}
	if tid <= firstTid {
		return from, nil
	}
	// Whichever end is nearer in time is likely nearer in the file.
	if tid.Seconds()-firstTid.Seconds() <= last.Seconds()-tid.Seconds() {
		return s.scanForward(from, end, tid)
	}
	return s.scanBackward(from, end, tid)
}

func (s *FileStorage) scanForward(pos, end int64, tid Tid) (int64, error) {
	for pos < end {
		h, err := s.readTxnHeader(pos)
		if err != nil {
			return 0, err
		}
		if h.Tid >= tid {
			return pos, nil
		}
		pos += int64(h.Len) + trailerSize
	}
	return end, nil
}

func (s *FileStorage) scanBackward(floor, end int64, tid Tid) (int64, error) {
	pos := end
	for pos > floor {
		tpos, h, err := s.txnBefore(pos)
		if err != nil {
			return 0, err
		}
		if h.Tid < tid {
			break
		}
		pos = tpos
	}
	return pos, nil
}

// findTxn returns the position of the transaction with the given tid,
// including one that is finished but not yet published.
func (s *FileStorage) findTxn(tid Tid) (int64, error) {
	if pos, ok := s.pendingTxn(tid); ok {
		return pos, nil
	}
	pos, err := s.seekTid(tid)
	if err != nil {
		return 0, err
	}
	s.mu.RLock()
	end := s.pos
	s.mu.RUnlock()
	if pos < end {
		h, err := s.readTxnHeader(pos)
		if err != nil {
			return 0, err
		}
		if h.Tid == tid {
			return pos, nil
		}
	}
	return 0, fmt.Errorf("transaction %s: %w", tid, ErrNoTransaction)
}

// TxnRecord is one transaction as the iterator yields it.
type TxnRecord struct {
	TxnInfo
	Status byte
	// Pos is the offset of the transaction header.
	Pos     int64
	Records []DataRecord
}

// DataRecord is one data record of an iterated transaction.
type DataRecord struct {
	Oid Oid
	Tid Tid
	// Data is the object's pickle in this revision, backpointers followed;
	// nil when the object does not exist in this revision.
	Data []byte
	// DataTxn is, for a backpointer record, the tid of the transaction
	// holding the record it points to (ZODB's data_txn); otherwise 0.
	DataTxn Tid
	Pos     int64
	Prev    int64
	// Back is the backpointer when the record has no data of its own.
	Back int64
}

// Iterator walks committed transactions in file order. It sees
// transactions committed after it was created, so a caller that reached
// the end can wait on FileStorage.Changed and call Next again.
type Iterator struct {
	s    *FileStorage
	pos  int64
	stop Tid
	w    *window
	err  error
	// durable iterators (IterateDurable) also yield transactions that
	// are durable but not yet published, skipping those before start.
	durable bool
	start   Tid
}

// Iterate returns an iterator over the transactions with start ≤ tid ≤ stop
// (stop 0 means no upper bound).
func (s *FileStorage) Iterate(start, stop Tid) (*Iterator, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	pos, err := s.seekTid(start)
	if err != nil {
		return nil, err
	}
	return &Iterator{s: s, pos: pos, stop: stop, w: newWindow(s.file, 0)}, nil
}

// IterateDurable returns an iterator over the transactions with tid ≥
// start that are durable, including those not yet published (held by the
// commit gate or about to be published). It is for the replication feed,
// which must send a transaction to synchronous secondaries before the
// gate lets clients see it; wait on DurableChanged at the end. Nothing
// else may expose what it yields: a durable transaction is not
// acknowledged, and the gate may never release it in this process.
func (s *FileStorage) IterateDurable(start Tid) (*Iterator, error) {
	it, err := s.Iterate(start, 0)
	if err != nil {
		return nil, err
	}
	// seekTid only knows published transactions; later ones are skipped
	// by tid.
	it.durable, it.start = true, start
	return it, nil
}

// end returns how far the iterator may read: the published end, or for a
// durable iterator the durable end. Both only grow (until a rewind) and
// the file always holds the bytes before them.
func (it *Iterator) end() int64 {
	if it.durable {
		return it.s.durableEnd()
	}
	it.s.mu.RLock()
	defer it.s.mu.RUnlock()
	return it.s.pos
}

// Next returns the next transaction, or io.EOF when there is none yet.
func (it *Iterator) Next() (*TxnRecord, error) {
	if it.err != nil {
		return nil, it.err
	}
	s := it.s
	if s.closed.Load() {
		return nil, ErrClosed
	}
	for {
		end := it.end()
		if it.pos >= end {
			return nil, io.EOF
		}
		it.w.size = end
		hb, err := it.w.bytes(it.pos, TxnHeaderSize)
		if err != nil {
			return nil, it.fail(err)
		}
		h := decodeTxnHeader(hb)
		if reason := checkTxnHeader(&h, it.pos, end); reason != "" {
			return nil, it.fail(&FormatError{Path: s.path, Offset: it.pos, Reason: reason})
		}
		if it.stop != 0 && h.Tid > it.stop {
			return nil, io.EOF
		}
		raw, err := it.w.bytes(it.pos, int64(h.Len)+trailerSize)
		if err != nil {
			return nil, it.fail(err)
		}
		raw = append([]byte(nil), raw...)
		rec := &TxnRecord{Status: h.Status, Pos: it.pos}
		v, err := parseTxn(s.path, it.pos, raw, func(rpos int64, dh *DataHeader, payload []byte) error {
			d := DataRecord{Oid: dh.Oid, Tid: dh.Tid, Pos: rpos, Prev: dh.Prev}
			if dh.PLen > 0 {
				d.Data = payload
			} else if d.Back = int64(binary.BigEndian.Uint64(payload)); d.Back != 0 {
				if err := s.resolveBack(&d, it.durable); err != nil {
					return err
				}
			}
			rec.Records = append(rec.Records, d)
			return nil
		})
		if err != nil {
			return nil, it.fail(err)
		}
		it.pos = v.end()
		if h.Status == StatusUndone || (it.durable && h.Tid < it.start) {
			continue
		}
		rec.TxnInfo = TxnInfo{Tid: h.Tid, User: v.user(), Description: v.description(), Extension: v.extension()}
		return rec, nil
	}
}

func (it *Iterator) fail(err error) error {
	it.err = err
	return err
}

// resolveBack fills in the data and data transaction of a backpointer
// record. With durable, the record may point into transactions that are
// durable but not yet published.
func (s *FileStorage) resolveBack(d *DataRecord, durable bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// The bound is read under s.mu so that the mapping, which is only
	// used when it covers the bound, cannot change meanwhile.
	end := s.pos
	if durable {
		end = max(end, s.durableEnd())
	}
	r, err := s.readRecordData(d.Back, d.Oid, true, end)
	if err != nil {
		return err
	}
	d.DataTxn = r.Tid
	data, err := s.recordDataUpTo(r, end)
	if err == nil {
		d.Data = data
		return nil
	}
	if _, deleted := err.(*NoObjectError); deleted {
		return nil // points at a deletion: no data
	}
	return err
}

// TxnAt returns the committed transaction with the given tid, or
// ErrNoTransaction.
func (s *FileStorage) TxnAt(tid Tid) (*TxnRecord, error) {
	it, err := s.Iterate(tid, tid)
	if err != nil {
		return nil, err
	}
	rec, err := it.Next()
	if errors.Is(err, io.EOF) || (err == nil && rec.Tid != tid) {
		return nil, fmt.Errorf("transaction %s: %w", tid, ErrNoTransaction)
	}
	return rec, err
}

// TidBefore returns the tid of the last committed transaction older than
// tid, or 0 if there is none.
func (s *FileStorage) TidBefore(tid Tid) (Tid, error) {
	pos, err := s.seekTid(tid)
	if err != nil {
		return 0, err
	}
	if pos <= fileHeaderSize {
		return 0, nil
	}
	_, h, err := s.txnBefore(pos)
	if err != nil {
		return 0, err
	}
	return h.Tid, nil
}

// CountAfter returns how many committed transactions (obsolete undone
// ones aside) have a tid greater than tid. It reads only headers.
func (s *FileStorage) CountAfter(tid Tid) (int, error) {
	from := tid + 1
	if tid == ^Tid(0) {
		return 0, nil
	}
	pos, err := s.seekTid(from)
	if err != nil {
		return 0, err
	}
	end := s.Size()
	n := 0
	for pos < end {
		h, err := s.readTxnHeader(pos)
		if err != nil {
			return n, err
		}
		if h.Status != StatusUndone {
			n++
		}
		pos += int64(h.Len) + trailerSize
	}
	return n, nil
}
