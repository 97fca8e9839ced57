package storage

import (
	"sync"
)

// Group commit. A finishing transaction is queued in file order; fsyncs
// are shared: whoever finds no fsync running starts one covering every
// transaction finished so far, and the others wait for it. Publication
// then makes durable transactions visible in order. Writers see queued
// transactions through latestPos, so conflict checks and backpointers
// account for them before readers do.
//
// With a commit gate (gate.go) a durable transaction is published only
// once the gate releases it; until then it stays queued, readable only
// through IterateDurable (the replication feed), and later transactions
// keep committing behind it.

// durability tracks which prefix of the file is on stable storage.
type durability struct {
	mu       sync.Mutex
	cond     *sync.Cond
	finished int64 // end of the last transaction marked committed
	durable  int64 // every byte before this is fsynced
	syncing  bool
	err      error
	changed  chan struct{} // closed and replaced when durable advances
}

// pendingSet holds finished transactions waiting to be published.
type pendingSet struct {
	mu    sync.Mutex
	queue []*Txn
	// latest maps each oid written by a queued transaction to the offset
	// of its newest record.
	latest map[Oid]int64
}

// queueFinished queues t, which has just left the vote queue (in file
// order) marked committed on disk.
func (s *FileStorage) queueFinished(t *Txn) {
	s.pending.mu.Lock()
	s.pending.queue = append(s.pending.queue, t)
	if s.pending.latest == nil {
		s.pending.latest = make(map[Oid]int64)
	}
	for oid, pos := range t.written {
		s.pending.latest[oid] = pos
	}
	s.pending.mu.Unlock()
	s.dur.mu.Lock()
	s.dur.finished = t.end
	s.dur.mu.Unlock()
}

// latestPos returns the offset of oid's newest committed record,
// including transactions finished but not yet published.
func (s *FileStorage) latestPos(oid Oid) (int64, bool) {
	// A transaction voted and not yet decided may write oid: its record
	// becomes the latest or vanishes, so wait for the decision.
	s.votes.waitDecided(oid)
	s.pending.mu.Lock()
	pos, ok := s.pending.latest[oid]
	s.pending.mu.Unlock()
	if ok {
		return pos, true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.idx.get(oid)
}

// makeDurable returns once every byte before end is on stable storage,
// sharing fsyncs with concurrent callers.
func (s *FileStorage) makeDurable(end int64) error {
	d := &s.dur
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.durable < end {
		if d.err != nil {
			return d.err
		}
		if d.syncing {
			d.cond.Wait()
			continue
		}
		d.syncing = true
		target := d.finished
		d.mu.Unlock()
		err := s.file.Sync()
		d.mu.Lock()
		d.syncing = false
		if err != nil {
			d.err = err
		} else if target > d.durable {
			d.durable = target
			close(d.changed)
			d.changed = make(chan struct{})
		}
		d.cond.Broadcast()
	}
	return nil
}

// durableEnd returns the end of the durable prefix of the file: a
// transaction boundary at or after the published end.
func (s *FileStorage) durableEnd() int64 {
	s.dur.mu.Lock()
	defer s.dur.mu.Unlock()
	return s.dur.durable
}

// publishDurable publishes, in order, every queued transaction that is
// durable, and wakes their committers. With a commit gate the publisher
// goroutine does it instead, since a gate call may block for long.
func (s *FileStorage) publishDurable() {
	if s.commitGate() != nil {
		s.handToPublisher()
		return
	}
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.publishUpTo(s.durableEnd())
}

// publishUpTo publishes, in order, the queued transactions that end at or
// before end, which must be durable, and wakes their committers. The
// caller holds publishMu.
func (s *FileStorage) publishUpTo(end int64) {
	s.pending.mu.Lock()
	n := 0
	for n < len(s.pending.queue) && s.pending.queue[n].end <= end {
		n++
	}
	ready := append([]*Txn(nil), s.pending.queue[:n]...)
	s.pending.mu.Unlock()
	if len(ready) == 0 {
		return
	}
	end = ready[len(ready)-1].end
	s.mu.RLock()
	mapped := len(s.mapped)
	s.mu.RUnlock()
	m := s.growMapping(end, mapped)

	s.mu.Lock()
	s.swapMapping(m)
	for _, t := range ready {
		if t.onPublish != nil {
			t.onPublish(t.tid, t.order)
		}
		for _, oid := range t.order {
			s.idx.set(oid, t.written[oid])
		}
		s.pos = t.end
		s.lastTid = t.tid
		s.marks.add(t.tid, t.tpos)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	// Readers now find these records in the index; writers no longer
	// need the queue's entries unless a newer queued record replaced them.
	// Only this function and failPending (both under publishMu) remove
	// entries, so the queue still starts with ready.
	s.pending.mu.Lock()
	s.pending.queue = s.pending.queue[n:]
	if len(s.pending.queue) == 0 {
		// Offsets can be reused once nothing is queued (a rewind).
		s.gate.toldEnd = 0
	}
	for _, t := range ready {
		for oid, pos := range t.written {
			if s.pending.latest[oid] == pos {
				delete(s.pending.latest, oid)
			}
		}
	}
	s.pending.mu.Unlock()
	for _, t := range ready {
		t.settle(nil)
	}
}

// Flush makes every finished transaction durable and visible. With a
// commit gate it waits for the gate's decision on them: an error wrapping
// ErrNotAcknowledged means they are durable but still invisible.
func (s *FileStorage) Flush() error {
	s.dur.mu.Lock()
	end := s.dur.finished
	s.dur.mu.Unlock()
	if err := s.makeDurable(end); err != nil {
		return s.failPending(err)
	}
	last := s.lastQueuedUpTo(end)
	s.publishDurable()
	if last != nil {
		<-last.done
	}
	if p := s.failed.Load(); p != nil {
		return *p
	}
	if last != nil && last.doneErr != nil && s.Size() < last.end {
		// Refused, then or earlier, and still not published.
		return last.doneErr
	}
	return nil
}

// FlushDurable makes every finished transaction durable, like Flush, but
// does not wait for its publication: with a commit gate they are handed to
// the publisher and become visible when the gate releases them. A replica
// uses it to acknowledge what it holds durably while keeping it invisible
// until its upstream releases it, which happens only after the
// acknowledgement: waiting for publication there would deadlock. Without
// a gate the transactions are visible when it returns, as with Flush.
func (s *FileStorage) FlushDurable() error {
	s.dur.mu.Lock()
	end := s.dur.finished
	s.dur.mu.Unlock()
	if err := s.makeDurable(end); err != nil {
		return s.failPending(err)
	}
	s.publishDurable()
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// lastQueuedUpTo returns the newest queued transaction ending at or
// before end, or nil.
func (s *FileStorage) lastQueuedUpTo(end int64) *Txn {
	s.pending.mu.Lock()
	defer s.pending.mu.Unlock()
	var last *Txn
	for _, t := range s.pending.queue {
		if t.end > end {
			break
		}
		last = t
	}
	return last
}

// pendingTxn returns the position of a finished, unpublished transaction.
func (s *FileStorage) pendingTxn(tid Tid) (int64, bool) {
	s.pending.mu.Lock()
	defer s.pending.mu.Unlock()
	for _, t := range s.pending.queue {
		if t.tid == tid {
			return t.tpos, true
		}
	}
	return 0, false
}

// failPending records a durability failure: the file's state is unknown,
// so the storage refuses further commits, and every queued transaction
// fails.
func (s *FileStorage) failPending(err error) error {
	s.failed.CompareAndSwap(nil, &err)
	// publishMu keeps a publication from interleaving with the removal.
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.pending.mu.Lock()
	queue := s.pending.queue
	s.pending.queue = nil
	s.pending.latest = nil
	s.pending.mu.Unlock()
	for _, t := range queue {
		t.settle(err)
	}
	return err
}
