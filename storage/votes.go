package storage

import (
	"fmt"
	"sync"
)

// Pipelined votes. A transaction holds the commit lock from TpcBegin
// through its vote only: once voted it joins the vote queue and lets the
// next transaction run, so that a committer's round trip between vote and
// finish (a network round trip with ZEO) no longer serializes everyone.
//
// The file keeps FileStorage's shape. Transactions are written in vote
// order, and at most one undecided transaction (status 'c') is in the
// file, at its end; votes behind it wait in memory and are written once
// everything before them is decided. An undecided transaction that aborts
// is cut off, and those behind it move down (relocate). A transaction
// that touches an object an undecided one writes waits for that decision
// before reading the object's current revision (latestPos), so no record
// ever refers to a transaction that may vanish, and conflict checks see
// exactly the committed history.
//
// A crash leaves at most the undecided transaction at the end of the
// file, which the next open cuts off as before; nothing behind it was
// written, so nothing acknowledged is lost.

type decision int

const (
	undecided decision = iota
	decidedCommit
	decidedAbort
)

// voteQueue holds voted transactions in vote (and file) order until they
// are decided and handed to group commit.
type voteQueue struct {
	mu    sync.Mutex
	cond  *sync.Cond // broadcast when a transaction leaves the queue
	queue []*Txn
	// oids counts, for each object, the queued transactions writing it.
	oids map[Oid]int
	// fileEnd is the end of what is written to the data file: finished
	// transactions and the undecided one at the head, if it is in the file.
	fileEnd int64
}

func (v *voteQueue) init(end int64) {
	v.cond = sync.NewCond(&v.mu)
	v.oids = make(map[Oid]int)
	v.fileEnd = end
}

// nextPos returns where a transaction beginning now will be written,
// unless one voted before it aborts. The caller holds v.mu.
func (v *voteQueue) nextPos() int64 {
	end := v.fileEnd
	for _, t := range v.queue {
		if !t.inFile && t.decision != decidedAbort {
			end += t.end - t.tpos
		}
	}
	return end
}

// end returns the end of what is written to the data file.
func (v *voteQueue) end() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.fileEnd
}

// pending reports whether any voted transaction is still queued.
func (v *voteQueue) pending() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.queue) > 0
}

// waitDecided waits until no queued transaction writes oid.
func (v *voteQueue) waitDecided(oid Oid) {
	v.mu.Lock()
	for v.oids[oid] > 0 {
		v.cond.Wait()
	}
	v.mu.Unlock()
}

// enqueue adds the voted transaction t, writing it to the file at once
// when nothing undecided is before it. A write error leaves t out of the
// queue and the file as it was, so the vote fails cleanly. The caller
// holds the commit lock and v.mu.
func (s *FileStorage) enqueueVote(t *Txn) error {
	v := &s.votes
	if len(v.queue) == 0 {
		if err := s.writeVoted(t); err != nil {
			return err
		}
	}
	t.queued = make(chan struct{})
	v.queue = append(v.queue, t)
	for _, oid := range t.order {
		v.oids[oid]++
	}
	return nil
}

// writeVoted writes t at the end of the file, moving it there first if a
// transaction before it aborted. The caller holds v.mu.
func (s *FileStorage) writeVoted(t *Txn) error {
	v := &s.votes
	if t.tpos != v.fileEnd {
		t.relocate(v.fileEnd)
	}
	if t.decision == decidedCommit {
		t.buf[txnStatusOffset] = t.status
	}
	if _, err := s.file.WriteAt(t.buf, t.tpos); err != nil {
		// Leave no partial transaction behind (disk full).
		_ = s.file.Truncate(t.tpos)
		return fmt.Errorf("vote: write transaction %s: %w", t.tid, err)
	}
	t.buf = nil
	t.inFile = true
	v.fileEnd = t.end
	return nil
}

// drainVotes moves the decided transactions at the head of the queue on:
// committed ones to group commit, aborted ones out of the file; the next
// undecided one is written to the file. The caller holds v.mu.
func (s *FileStorage) drainVotes() {
	v := &s.votes
	for len(v.queue) > 0 {
		t := v.queue[0]
		if t.decision == decidedAbort {
			if t.inFile {
				if err := s.file.Truncate(t.tpos); err != nil {
					s.log.Error("abort: cannot remove voted transaction", "tid", t.tid, "error", err)
				}
				v.fileEnd = t.tpos
			}
			v.pop(false)
			continue
		}
		if !t.inFile {
			if err := s.writeVoted(t); err != nil {
				s.failVotes(err)
				return
			}
		}
		if t.decision == undecided {
			return
		}
		s.queueFinished(t)
		v.pop(true)
	}
}

// pop removes the head of the queue; queued tells its committer whether it
// went on to group commit. The caller holds v.mu.
func (v *voteQueue) pop(queued bool) {
	t := v.queue[0]
	v.queue[0] = nil
	v.queue = v.queue[1:]
	for _, oid := range t.order {
		if v.oids[oid]--; v.oids[oid] <= 0 {
			delete(v.oids, oid)
		}
	}
	t.queuedOK = queued
	close(t.queued)
	v.cond.Broadcast()
}

// failVotes records a write failure: the file's state is unknown, so the
// storage refuses further commits and every queued transaction fails.
// The caller holds v.mu.
func (s *FileStorage) failVotes(err error) {
	s.failed.CompareAndSwap(nil, &err)
	for len(s.votes.queue) > 0 {
		s.votes.pop(false)
	}
}

// abortVotes aborts every undecided queued transaction (Close).
func (s *FileStorage) abortVotes() {
	s.votes.mu.Lock()
	queue := append([]*Txn(nil), s.votes.queue...)
	s.votes.mu.Unlock()
	for _, t := range queue {
		t.TpcAbort()
	}
}

// relocate moves a voted transaction that is not in the file yet to tpos:
// the records' transaction offsets change, nothing else in them does
// (their previous-record and back pointers refer to committed records).
func (t *Txn) relocate(tpos int64) {
	delta := tpos - t.tpos
	for o := t.hlen; o < int64(len(t.buf))-trailerSize; {
		h := decodeDataHeader(t.buf[o:])
		h.TLoc = tpos
		h.encode(t.buf[o:])
		o += h.recordLen()
	}
	for oid, pos := range t.written {
		t.written[oid] = pos + delta
	}
	t.tpos, t.end = tpos, t.end+delta
}
