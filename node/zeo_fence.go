package node

import (
	"errors"
	"fmt"
)

// ErrTransient is wrapped by errors a ZEO client may retry once the
// cluster settles: the node is a fenced primary, or a commit could not be
// acknowledged by synchronous secondaries. Clients see them as
// ZODB.POSException.StorageTransientError.
var ErrTransient = errors.New("transient")

// ErrFenced is wrapped by commit refusals of a fenced primary: its
// ZooKeeper session is in doubt, so another node may already be primary.
var ErrFenced = fmt.Errorf("primary is fenced: %w", ErrTransient)

// Fence makes every vote and tpc_finish fail with ErrFenced until Unfence,
// without dropping connections: a fenced primary that verifies it still
// holds the primary znode resumes with its clients.
func (z *ZEOService) Fence(reason string) {
	if z.fence.Swap(&reason) == nil {
		z.metrics.fenceStarted()
	}
}

// Unfence lets commits through again.
func (z *ZEOService) Unfence() { z.fence.Store(nil) }

// Fenced reports whether commits are refused as fenced.
func (z *ZEOService) Fenced() bool { return z.fence.Load() != nil }

// SetCommitGuard installs a check run before every vote and tpc_finish
// (nil removes it); an error refuses the commit. A primary uses it to
// refuse commits once its ZooKeeper lease may have run out, which a
// process that was stopped and resumed notices before its ZooKeeper
// client does.
func (z *ZEOService) SetCommitGuard(check func() error) {
	if check == nil {
		z.guard.Store(nil)
		return
	}
	z.guard.Store(&check)
}

// fenceError returns the error refusing a commit, or nil.
func (z *ZEOService) fenceError() error {
	if r := z.fence.Load(); r != nil {
		return fmt.Errorf("%w (%s); retry against the current primary", ErrFenced, *r)
	}
	if g := z.guard.Load(); g != nil {
		if err := (*g)(); err != nil {
			return fmt.Errorf("%w (%w); retry against the current primary", ErrFenced, err)
		}
	}
	return nil
}

// DropClients closes every client connection, so that clients reconnect
// and find the node's new role (after a demotion or a rewind) instead of
// keeping a view the node no longer serves.
func (z *ZEOService) DropClients() { z.closeAll() }

// Rewound is told that the storage was rewound (a diverged copy cut back
// to what the new primary has): the last tid moves back, and clients,
// whose caches may hold removed data, are sent away to reconnect and
// revalidate.
func (z *ZEOService) Rewound() {
	z.mu.Lock()
	z.lastTid = z.store.LastTransaction()
	z.mu.Unlock()
	z.closeAll()
}
