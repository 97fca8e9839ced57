package storage

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// CommitGate decides when durable transactions may become visible. The
// publisher calls it with the newest tid of a batch of durable, queued
// transactions and publishes the batch only when it returns nil; a
// synchronous primary uses it to wait until enough secondaries have
// acknowledged tid. It must return when ctx is done (the storage is
// closing) and must not call back into the storage's commit path
// (TpcBegin, Flush, Close): it runs while commits queue behind it.
type CommitGate func(ctx context.Context, tid Tid) error

// Retry delays for transactions the gate refused and nobody waits for.
const (
	gateRetryMin = 50 * time.Millisecond
	gateRetryMax = 2 * time.Second
)

// gateState is the commit gate and the publisher goroutine that calls
// it. Gate calls run outside every storage lock so that later
// transactions keep committing and fsyncing while one blocks; the next
// call covers them.
type gateState struct {
	mu sync.Mutex
	fn CommitGate
	// ctx is cancelled by Close so that a blocked gate call returns.
	ctx    context.Context
	cancel context.CancelFunc
	// running is set once the publisher goroutine is started; stopped
	// is closed when it has exited.
	running bool
	stopped chan struct{}
	// wake has room for one signal: durable transactions are waiting.
	wake chan struct{}
	// retryCancel interrupts a retry call in flight (a call covering only
	// transactions whose committers were already told of a refusal), so
	// that a fresh commit is not held up behind it.
	retryCancel context.CancelFunc

	// Guarded by FileStorage.publishMu:
	//
	// toldEnd is the end of the refused transactions whose committers
	// were told so.
	toldEnd int64
	// exited is set when the publisher has stopped; committers then
	// settle their own transactions.
	exited bool
}

func (g *gateState) init() {
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.stopped = make(chan struct{})
	g.wake = make(chan struct{}, 1)
}

// SetCommitGate installs g between durability and visibility, or removes
// the gate when g is nil; it can be changed at any time. A gate call in
// flight is not interrupted, but transactions it refuses are published by
// the next decision, which an ungated storage makes at once: removing the
// gate publishes whatever the old one held. A primary that must not
// expose held transactions (it lost its term) should install a gate that
// refuses instead. A commit finishing while the gate is being set may
// still be published ungated. After Close it does nothing.
func (s *FileStorage) SetCommitGate(g CommitGate) {
	s.gate.mu.Lock()
	if s.gate.ctx.Err() != nil {
		s.gate.mu.Unlock()
		return
	}
	s.gate.fn = g
	start := g != nil && !s.gate.running
	if start {
		s.gate.running = true
	}
	s.gate.mu.Unlock()
	if start {
		go s.runPublisher()
	}
	// Transactions may be waiting for the new gate, or for none.
	s.kickPublisher()
}

func (s *FileStorage) commitGate() CommitGate {
	s.gate.mu.Lock()
	defer s.gate.mu.Unlock()
	return s.gate.fn
}

// handToPublisher asks the publisher goroutine to decide on the durable
// queued transactions, or refuses them itself if the publisher has
// stopped (the storage is closing).
func (s *FileStorage) handToPublisher() {
	s.publishMu.Lock()
	if s.gate.exited {
		s.refuseUpTo(s.durableEnd(), fmt.Errorf("%w: %w", ErrNotAcknowledged, ErrClosed))
		s.publishMu.Unlock()
		return
	}
	s.publishMu.Unlock()
	s.kickPublisher()
}

func (s *FileStorage) kickPublisher() {
	s.gate.mu.Lock()
	if s.gate.retryCancel != nil {
		s.gate.retryCancel()
		s.gate.retryCancel = nil
	}
	s.gate.mu.Unlock()
	select {
	case s.gate.wake <- struct{}{}:
	default:
	}
}

// runPublisher publishes gated transactions until the storage closes.
func (s *FileStorage) runPublisher() {
	defer close(s.gate.stopped)
	retry := time.NewTimer(gateRetryMax)
	retry.Stop()
	delay := gateRetryMin
	for {
		select {
		case <-s.gate.wake:
		case <-retry.C:
		case <-s.gate.ctx.Done():
			s.publisherExit()
			return
		}
		if s.gateAndPublish() {
			// Refused transactions wait with nobody to retry for them.
			retry.Reset(delay)
			delay = min(2*delay, gateRetryMax)
		} else {
			retry.Stop()
			delay = gateRetryMin
		}
	}
}

// gateAndPublish calls the gate for the durable queued transactions and
// publishes them when it releases them, until none is left. It reports
// whether refused transactions remain.
func (s *FileStorage) gateAndPublish() (refused bool) {
	for {
		gate := s.commitGate()
		s.publishMu.Lock()
		durable := s.durableEnd()
		if gate == nil {
			s.publishUpTo(durable)
			s.publishMu.Unlock()
			return false
		}
		last := s.lastQueuedUpTo(durable)
		if last == nil {
			s.publishMu.Unlock()
			return false
		}
		tid, end := last.tid, last.end
		retry := end <= s.gate.toldEnd
		s.publishMu.Unlock()

		ctx := s.gate.ctx
		var cancel context.CancelFunc
		if retry {
			ctx, cancel = context.WithCancel(ctx)
			s.gate.mu.Lock()
			s.gate.retryCancel = cancel
			s.gate.mu.Unlock()
			// A commit that became durable before the cancel func was
			// registered kicked without cancelling: look again.
			if s.durableEnd() > end {
				cancel()
			}
		}
		err := gate(ctx, tid)
		if cancel != nil {
			s.gate.mu.Lock()
			s.gate.retryCancel = nil
			s.gate.mu.Unlock()
			cancel()
		}

		s.publishMu.Lock()
		if err == nil {
			if end <= s.gate.toldEnd {
				s.log.Info("commit gate released transactions it had refused", "tid", tid)
			}
			s.publishUpTo(end)
			s.publishMu.Unlock()
			continue // more may have become durable meanwhile
		}
		fresh := end > s.gate.toldEnd
		s.refuseUpTo(end, fmt.Errorf("%w: %w", ErrNotAcknowledged, err))
		more := s.durableEnd() > end
		s.publishMu.Unlock()
		if fresh {
			s.log.Warn("commit gate refused transactions; they stay durable and invisible until it releases them",
				"tid", tid, "error", err)
		} else {
			s.log.Debug("commit gate retry failed", "tid", tid, "error", err)
		}
		if !more {
			return true
		}
		// Transactions that became durable during the call have a
		// committer waiting: ask again for them at once.
	}
}

// refuseUpTo tells the committers of the queued transactions ending at or
// before end that the gate refused them. The transactions stay queued.
// The caller holds publishMu.
func (s *FileStorage) refuseUpTo(end int64, err error) {
	s.pending.mu.Lock()
	var refused []*Txn
	for _, t := range s.pending.queue {
		if t.end > end {
			break
		}
		refused = append(refused, t)
	}
	s.pending.mu.Unlock()
	for _, t := range refused {
		t.settle(fmt.Errorf("transaction %s: %w", t.tid, err))
	}
	s.gate.toldEnd = max(s.gate.toldEnd, end)
}

// publisherExit settles what is waiting when the storage closes.
func (s *FileStorage) publisherExit() {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.gate.exited = true
	durable := s.durableEnd()
	if s.commitGate() == nil {
		s.publishUpTo(durable)
		return
	}
	s.refuseUpTo(durable, fmt.Errorf("%w: %w", ErrNotAcknowledged, ErrClosed))
}

// stopPublisher cancels a blocked gate call and waits for the publisher
// to stop. Close calls it before waiting for committers.
func (s *FileStorage) stopPublisher() {
	s.gate.mu.Lock()
	s.gate.cancel()
	running := s.gate.running
	s.gate.mu.Unlock()
	if running {
		<-s.gate.stopped
	}
}

// DurableChanged returns a channel that is closed when more transactions
// become durable, published or not (see IterateDurable). Call it again
// after it fires.
func (s *FileStorage) DurableChanged() <-chan struct{} {
	s.dur.mu.Lock()
	defer s.dur.mu.Unlock()
	return s.dur.changed
}

// LastDurable returns the tid of the newest durable transaction, which
// may not be published yet: the last one IterateDurable yields.
func (s *FileStorage) LastDurable() Tid {
	durable := s.durableEnd()
	if last := s.lastQueuedUpTo(durable); last != nil {
		return last.tid
	}
	// Published since, or nothing queued.
	return s.LastTransaction()
}

// unpublishedCount returns how many finished transactions are not
// published yet.
func (s *FileStorage) unpublishedCount() int {
	s.pending.mu.Lock()
	defer s.pending.mu.Unlock()
	return len(s.pending.queue)
}
