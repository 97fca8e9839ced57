package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
)

// TxnMeta is the metadata of a transaction. User and Description are raw
// bytes (UTF-8 by convention); Extension is the pickled metadata dict, empty
// for an empty dict (spec A.5).
type TxnMeta struct {
	User        []byte
	Description []byte
	Extension   []byte
	// Tid, when non-zero, is used as the transaction id unchecked (copying
	// and replication); otherwise a new tid later than the last is chosen.
	Tid Tid
	// Status is written at finish; ' ' when zero. Copying a packed
	// transaction passes 'p'.
	Status byte
}

// maxAutoTid bounds the tid a new transaction may follow: the last minute
// a TimeStamp can encode (in the year 9917), after which tids would wrap.
const maxAutoTid Tid = 0xffffffff_00000000

type txnState int

const (
	txnOpen txnState = iota
	txnVoted
	txnDone
)

// txnStatusOffset is where the status byte lies in a transaction header.
const txnStatusOffset = 16

// Txn is the transaction in progress between TpcBegin and TpcFinish or
// TpcAbort. It holds the storage's commit lock until its vote, then waits
// in the vote queue (votes.go) for its finish or abort. Its methods are
// safe to call from several goroutines, though a transaction is normally
// driven by one.
type Txn struct {
	s      *FileStorage
	mu     sync.Mutex
	state  txnState
	tid    Tid
	status byte
	meta   TxnMeta
	// tpos is where the transaction header goes. Until the transaction is
	// in the file it may still move down (relocate), when a transaction
	// voted before it aborts; offsets derived from it move along.
	tpos int64
	hlen int64 // header length with user, description and extension
	// records holds the data records until the vote.
	records []byte
	written map[Oid]int64 // oid → offset of its record in this transaction
	order   []Oid         // oids in the order of their first record
	end     int64         // end of the transaction, set by vote

	// Vote queue state (votes.go), guarded by the storage's votes.mu:
	// buf is the encoded transaction while it waits to be written, inFile
	// whether it is written, decision its finish or abort; queued is
	// closed when it leaves the queue, queuedOK when that was to group
	// commit rather than an abort or a failure.
	buf      []byte
	inFile   bool
	decision decision
	queued   chan struct{}
	queuedOK bool

	onPublish PublishFunc
	// done is closed once the committer's outcome is known: published,
	// refused by the commit gate (doneErr wraps ErrNotAcknowledged; the
	// transaction stays queued and may still be published), or lost to a
	// durability failure.
	done     chan struct{}
	doneErr  error
	doneOnce sync.Once
}

// settle records the committer's outcome, once: a transaction refused by
// the gate and published later keeps the error its committer was given.
func (t *Txn) settle(err error) {
	t.doneOnce.Do(func() {
		t.doneErr = err
		close(t.done)
	})
}

// TpcBegin starts a transaction, waiting for the commit lock until ctx is
// done. Readers are never blocked by a transaction in progress.
func (s *FileStorage) TpcBegin(ctx context.Context, meta TxnMeta) (*Txn, error) {
	if err := s.checkWritable(); err != nil {
		return nil, err
	}
	if len(meta.User) > maxMetaLen || len(meta.Description) > maxMetaLen || len(meta.Extension) > maxMetaLen {
		return nil, fmt.Errorf("transaction metadata longer than %d bytes: %w", maxMetaLen, ErrWrongTransaction)
	}
	select {
	case s.commitLock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := s.checkWritable(); err != nil {
		<-s.commitLock
		return nil, err
	}
	// Transactions finished but not yet durable, and voted ones, lie
	// past the published end; this one goes after them.
	s.votes.mu.Lock()
	tpos := s.votes.nextPos()
	s.votes.mu.Unlock()
	s.mu.RLock()
	last := s.lastTid
	s.mu.RUnlock()
	t := &Txn{
		s:       s,
		tid:     meta.Tid,
		status:  meta.Status,
		meta:    meta,
		tpos:    tpos,
		hlen:    int64(TxnHeaderSize + len(meta.User) + len(meta.Description) + len(meta.Extension)),
		written: make(map[Oid]int64),
	}
	if t.status == 0 {
		t.status = StatusCommitted
	}
	if t.tid == 0 {
		prev := max(s.lastStamp, last)
		if prev >= maxAutoTid {
			<-s.commitLock
			return nil, fmt.Errorf("no transaction id after %s is left: %w", prev, ErrWrongTransaction)
		}
		t.tid = NewTid(s.now(), prev)
	}
	s.lastStamp = t.tid
	s.current.Store(t)
	return t, nil
}

// Tid returns the transaction's id.
func (t *Txn) Tid() Tid { return t.tid }

// Oids returns the objects the transaction has written so far, in the
// order of their first record.
func (t *Txn) Oids() []Oid {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Oid(nil), t.order...)
}

// here is the file offset the next record will have.
func (t *Txn) here() int64 { return t.tpos + t.hlen + int64(len(t.records)) }

func (t *Txn) checkOpen() error {
	if t.state != txnOpen {
		return fmt.Errorf("transaction %s is not open for writes: %w", t.tid, ErrWrongTransaction)
	}
	return nil
}

// committedSerial returns the tid of oid's latest committed record (one
// finishing counts: a later writer must conflict with it), or false if
// the object is new.
func (t *Txn) committedSerial(oid Oid) (Tid, int64, bool, error) {
	s := t.s
	pos, ok := s.latestPos(oid)
	if !ok {
		return 0, 0, false, nil
	}
	h, err := s.readDataHeader(pos, oid)
	if err != nil {
		return 0, 0, false, err
	}
	return h.Tid, pos, true, nil
}

// appendRecord adds a data record (payload, or a backpointer when data is
// nil) to the transaction.
func (t *Txn) appendRecord(oid Oid, tid Tid, prev int64, data []byte, back int64) {
	h := DataHeader{Oid: oid, Tid: tid, Prev: prev, TLoc: t.tpos, PLen: uint64(len(data))}
	here := t.here()
	var hb [DataHeaderSize]byte
	h.encode(hb[:])
	t.records = append(t.records, hb[:]...)
	if len(data) > 0 {
		t.records = append(t.records, data...)
	} else {
		t.records = binary.BigEndian.AppendUint64(t.records, uint64(back))
	}
	if _, seen := t.written[oid]; !seen {
		t.order = append(t.order, oid)
	}
	t.written[oid] = here
}

// Store writes a new revision of oid. serial is the revision the change is
// based on (0 for a new object); if another revision has been committed
// since, Store returns a *ConflictError and writes nothing.
func (t *Txn) Store(oid Oid, serial Tid, data []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkOpen(); err != nil {
		return err
	}
	if len(data) == 0 {
		return fmt.Errorf("store of oid %s with empty data: %w", oid, ErrWrongTransaction)
	}
	committed, prev, exists, err := t.committedSerial(oid)
	if err != nil {
		return err
	}
	if exists && committed != serial {
		return &ConflictError{Oid: oid, Committed: committed, Given: serial}
	}
	t.appendRecord(oid, t.tid, prev, data, 0)
	return nil
}

// CheckCurrentSerial fails with a read *ConflictError unless serial is
// still oid's committed revision.
func (t *Txn) CheckCurrentSerial(oid Oid, serial Tid) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkOpen(); err != nil {
		return err
	}
	committed, _, exists, err := t.committedSerial(oid)
	if err != nil {
		return err
	}
	if !exists {
		return &NoObjectError{Oid: oid}
	}
	if committed != serial {
		return &ConflictError{Oid: oid, Committed: committed, Given: serial, Read: true}
	}
	return nil
}

// DeleteObject writes a deletion record for oid, whose current revision
// must be serial.
func (t *Txn) DeleteObject(oid Oid, serial Tid) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkOpen(); err != nil {
		return err
	}
	committed, prev, exists, err := t.committedSerial(oid)
	if err != nil {
		return err
	}
	if !exists {
		return &NoObjectError{Oid: oid}
	}
	if committed != serial {
		return &ConflictError{Oid: oid, Committed: committed, Given: serial}
	}
	t.appendRecord(oid, t.tid, prev, nil, 0)
	return nil
}

// Restore writes a revision copied from another storage, without conflict
// checks (ZODB's restore). serial is the revision's own tid. data nil means
// the object does not exist in this revision. prevTxn, when non-zero, names
// the transaction that held this data in the source: if that transaction
// is in this file and has a record for oid with the same data, a
// backpointer to it is written instead of the data, as ZODB does.
func (t *Txn) Restore(oid Oid, serial Tid, data []byte, prevTxn Tid) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkOpen(); err != nil {
		return err
	}
	t.s.noteOid(oid)
	var back int64
	if prevTxn != 0 {
		if tpos, err := t.s.findTxn(prevTxn); err == nil {
			back, err = t.s.dataFind(tpos, oid, data)
			if err != nil {
				return err
			}
		}
	}
	prev, _ := t.s.latestPos(oid)
	if back != 0 {
		data = nil
	}
	t.appendRecord(oid, serial, prev, data, back)
	return nil
}

// TpcVote lays the transaction out with the checkpoint status 'c' and
// releases the commit lock: the next transaction may vote behind it. It is
// written to the data file at once when nothing undecided is before it,
// otherwise once everything before it is decided. Until TpcFinish no
// reader sees it, and a crash before then leaves at most a 'c'
// transaction at the end of the file, which the next open cuts off.
func (t *Txn) TpcVote() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkOpen(); err != nil {
		return err
	}
	s := t.s
	tlen := t.hlen + int64(len(t.records))
	if t.tpos+tlen+trailerSize > maxOffset {
		return fmt.Errorf("data file would exceed 2^48 bytes: %w", ErrWrongTransaction)
	}
	buf := make([]byte, 0, tlen+trailerSize)
	h := TxnHeader{Tid: t.tid, Len: uint64(tlen), Status: StatusCheckpoint,
		ULen: uint16(len(t.meta.User)), DLen: uint16(len(t.meta.Description)), ELen: uint16(len(t.meta.Extension))}
	var hb [TxnHeaderSize]byte
	h.encode(hb[:])
	buf = append(buf, hb[:]...)
	buf = append(buf, t.meta.User...)
	buf = append(buf, t.meta.Description...)
	buf = append(buf, t.meta.Extension...)
	buf = append(buf, t.records...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(tlen))
	t.buf = buf
	t.end = t.tpos + tlen + trailerSize
	s.votes.mu.Lock()
	err := s.enqueueVote(t)
	s.votes.mu.Unlock()
	if err != nil {
		t.buf = nil
		return err
	}
	t.records = nil
	t.state = txnVoted
	t.release()
	return nil
}

// TpcFinish marks the voted transaction committed, makes it durable and
// then visible to readers, and releases the commit lock.
func (t *Txn) TpcFinish() (Tid, error) { return t.TpcFinishWith(nil) }

// PublishFunc is called while a commit becomes visible: no reader of the
// storage can observe the commit before it returns, so a server can queue
// invalidations that must precede any answer computed from the new state.
// It must not call back into the storage.
type PublishFunc func(tid Tid, oids []Oid)

// TpcFinishWith is TpcFinish with a hook run at the moment of publication.
//
// Finishing is a group commit: the transaction is marked committed and
// queued, the commit lock is released so the next transaction can write
// behind it, and one fsync then covers every transaction finished so far.
// Transactions become visible strictly in file order, each only once it is
// durable and, when a commit gate is set, released by it.
//
// An error wrapping ErrNotAcknowledged means the gate refused the
// transaction: it is durable and stays queued, invisible, until a later
// gate call releases it, so the caller must report the outcome as unknown
// rather than as a failure.
func (t *Txn) TpcFinishWith(onPublish PublishFunc) (Tid, error) {
	s := t.s
	s.finishing.Add(1)
	defer s.finishing.Done()
	if _, err := t.TpcFinishQueued(onPublish); err != nil {
		return 0, err
	}
	// Transactions voted before this one decide first.
	<-t.queued
	if !t.queuedOK {
		return 0, t.droppedErr()
	}
	if err := s.makeDurable(t.end); err != nil {
		return 0, s.failPending(err)
	}
	s.publishDurable()
	<-t.done
	if p := s.failed.Load(); p != nil {
		return 0, *p
	}
	if t.doneErr != nil {
		return 0, t.doneErr
	}
	return t.tid, nil
}

// TpcFinishQueued marks the voted transaction committed without waiting
// for durability: the transaction becomes durable and visible at the next
// Flush (or when a later TpcFinish makes it durable), once every
// transaction voted before it is decided. A replica applying a stream
// (one transaction at a time, so queued at once) uses it to share one
// fsync among many transactions; a crash before the Flush loses only
// transactions that were never acknowledged.
func (t *Txn) TpcFinishQueued(onPublish PublishFunc) (Tid, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != txnVoted {
		return 0, fmt.Errorf("finish of transaction %s before vote: %w", t.tid, ErrWrongTransaction)
	}
	s := t.s
	t.onPublish = onPublish
	t.done = make(chan struct{})
	t.state = txnDone
	s.votes.mu.Lock()
	defer s.votes.mu.Unlock()
	select {
	case <-t.queued:
		return 0, t.droppedErr()
	default:
	}
	if t.inFile {
		if _, err := s.file.WriteAt([]byte{t.status}, t.tpos+txnStatusOffset); err != nil {
			// The file state is unknown: refuse further commits.
			err = fmt.Errorf("finish transaction %s: %w", t.tid, err)
			s.failVotes(err)
			return 0, err
		}
	}
	t.decision = decidedCommit
	s.drainVotes()
	return t.tid, nil
}

// droppedErr says why a voted transaction left the vote queue without
// reaching group commit: a write failure, or a Close that aborted it.
func (t *Txn) droppedErr() error {
	if p := t.s.failed.Load(); p != nil {
		return *p
	}
	return fmt.Errorf("finish of transaction %s: %w", t.tid, ErrClosed)
}

// TpcAbort discards the transaction: an open one releases the commit
// lock, a voted one leaves the vote queue and the file. Aborting a
// finished transaction does nothing.
func (t *Txn) TpcAbort() {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.state {
	case txnOpen:
		t.state = txnDone
		t.release()
	case txnVoted:
		t.state = txnDone
		v := &t.s.votes
		v.mu.Lock()
		t.decision = decidedAbort
		t.s.drainVotes()
		v.mu.Unlock()
	}
}

func (t *Txn) release() {
	t.s.current.CompareAndSwap(t, nil)
	<-t.s.commitLock
}
