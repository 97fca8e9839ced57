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

// durability tracks which prefix of the file is on stable storage.
type durability struct {
	mu       sync.Mutex
	cond     *sync.Cond
	finished int64 // end of the last transaction marked committed
	durable  int64 // every byte before this is fsynced
	syncing  bool
	err      error
}

// pendingSet holds finished transactions waiting to be published.
type pendingSet struct {
	mu    sync.Mutex
	queue []*Txn
	// latest maps each oid written by a queued transaction to the offset
	// of its newest record.
	latest map[Oid]int64
}

// queueFinished queues t, which holds the commit lock and has just been
// marked committed on disk.
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
		} else {
			d.durable = max(d.durable, target)
		}
		d.cond.Broadcast()
	}
	return nil
}

// publishDurable publishes, in order, every queued transaction that is
// durable, and wakes their committers.
func (s *FileStorage) publishDurable() {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.dur.mu.Lock()
	durable := s.dur.durable
	s.dur.mu.Unlock()
	s.pending.mu.Lock()
	n := 0
	for n < len(s.pending.queue) && s.pending.queue[n].end <= durable {
		n++
	}
	ready := append([]*Txn(nil), s.pending.queue[:n]...)
	s.pending.mu.Unlock()
	if len(ready) == 0 {
		return
	}
	end := ready[len(ready)-1].end
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
	s.pending.mu.Lock()
	s.pending.queue = s.pending.queue[n:]
	for _, t := range ready {
		for oid, pos := range t.written {
			if s.pending.latest[oid] == pos {
				delete(s.pending.latest, oid)
			}
		}
	}
	s.pending.mu.Unlock()
	for _, t := range ready {
		close(t.published)
	}
}

// Flush makes every finished transaction durable and visible.
func (s *FileStorage) Flush() error {
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
	s.pending.mu.Lock()
	queue := s.pending.queue
	s.pending.queue = nil
	s.pending.latest = nil
	s.pending.mu.Unlock()
	for _, t := range queue {
		close(t.published)
	}
	return err
}
