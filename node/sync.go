package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zrs-go/zrs/storage"
)

// Synchronous replication (design: cluster.md, "Synchronous replication").
//
// The storage's commit gate (storage.CommitGate) holds each durable batch
// invisible until the feed's Gate releases it. The feed keeps the sync
// members: secondaries that have acknowledged every commit acknowledged
// to a client. The invariant, kept at every release of a tid T, is that
// every member has acknowledged T, and the member list is recorded
// (OnSyncChange, the sync znode) before any release that needs a member
// removed, so failover, which promotes only a member, never loses an
// acknowledged commit. Additions may be recorded late: a member missing
// from the record only narrows the failover choice.
//
// syncSet is the decision, a pure function of the acknowledgements; the
// Feed does the waiting and the recording around it.

// ErrSyncTimeout says that fewer than the required synchronous
// secondaries acknowledged a commit within the commit timeout (strict
// mode). The commit is durable on the primary and may still become
// visible; a client may retry.
var ErrSyncTimeout = errors.New("timed out waiting for synchronous secondaries")

// Defaults for FeedConfig.
const (
	DefaultCommitTimeout = 10 * time.Second
	DefaultSyncGrace     = 200 * time.Millisecond
)

// syncSet decides when a tid may be released. It is not safe for
// concurrent use; the Feed serializes it.
type syncSet struct {
	n       int // secondaries that must hold each released commit
	strict  bool
	grace   time.Duration // how long to wait for lagging members
	timeout time.Duration // strict: how long to wait for n acknowledgements

	// members is the recorded member list, sorted; known is false until
	// the first release records one, so that it is always recorded.
	members []string
	known   bool
	// released is the newest tid released.
	released storage.Tid
}

// syncInput is what the feed knows when deciding.
type syncInput struct {
	tid storage.Tid
	// floor is the newest tid visible to clients: the last released one,
	// or one published before the gate was on. A secondary that
	// acknowledged it has caught up and may become a member.
	floor storage.Tid
	// acked is each known secondary's newest acknowledged tid, including
	// disconnected ones (what they acknowledged, they durably hold).
	acked map[string]storage.Tid
	// connected are the zrs-go/1 secondaries streaming now.
	connected map[string]bool
	// elapsed is the time since the gate call started.
	elapsed time.Duration
}

type syncVerdict int

const (
	syncWait syncVerdict = iota
	syncRelease
	syncTimeout
)

func (v syncVerdict) String() string {
	switch v {
	case syncWait:
		return "wait"
	case syncRelease:
		return "release"
	}
	return "timeout"
}

// syncDecision is what to do about a tid.
type syncDecision struct {
	verdict syncVerdict
	// members are the members after a release, sorted: every one has
	// acknowledged the tid.
	members []string
	// record is set when members differ from the recorded list, which
	// must then be recorded before releasing (and must be, if anyone was
	// removed).
	record bool
	// wait is, for syncWait, the longest to wait before deciding again
	// (acknowledgements also wake the waiter).
	wait time.Duration
	// acked is how many secondaries holding the tid will be members.
	acked int
}

// floorOf returns the tid a secondary must have acknowledged to join.
func (s *syncSet) floorOf(in syncInput) storage.Tid { return max(s.released, in.floor) }

// candidates are the members plus the connected secondaries that caught
// up, which join as soon as they acknowledge what they are asked to.
func (s *syncSet) candidates(in syncInput) []string {
	floor := s.floorOf(in)
	cand := slices.Clone(s.members)
	for name := range in.connected {
		if acked, ok := in.acked[name]; ok && acked >= floor && !slices.Contains(cand, name) {
			cand = append(cand, name)
		}
	}
	slices.Sort(cand)
	return cand
}

// decide says whether in.tid may be released now.
func (s *syncSet) decide(in syncInput) syncDecision {
	cand := s.candidates(in)
	var holders []string // candidates that acknowledged the tid
	waiting := 0         // connected candidates that may still
	for _, m := range cand {
		if in.acked[m] >= in.tid {
			holders = append(holders, m)
		} else if in.connected[m] {
			waiting++
		}
	}
	release := func() syncDecision {
		d := syncDecision{verdict: syncRelease, members: holders, acked: len(holders)}
		if d.members == nil {
			d.members = []string{}
		}
		d.record = !s.known || !slices.Equal(d.members, s.members)
		return d
	}
	enough := len(holders) >= s.n
	switch {
	case enough && waiting == 0:
		return release()
	case !s.strict && waiting == 0 && len(cand) < s.n:
		// Already asynchronous (too few members and nobody else caught
		// up): waiting for the grace period could not change the outcome.
		return release()
	case in.elapsed < s.grace:
		return syncDecision{verdict: syncWait, wait: s.grace - in.elapsed, acked: len(holders)}
	case enough:
		// Lagging members are dropped (recorded first).
		return release()
	case !s.strict:
		// Degrade to asynchronous: the members are those that hold the
		// tid, maybe none, until secondaries catch up.
		return release()
	case in.elapsed < s.timeout:
		return syncDecision{verdict: syncWait, wait: s.timeout - in.elapsed, acked: len(holders)}
	}
	return syncDecision{verdict: syncTimeout, acked: len(holders)}
}

// joins returns the member list with the connected secondaries that have
// caught up added, and whether that adds anyone. Nothing joins before the
// first release, which records the first list.
func (s *syncSet) joins(in syncInput) ([]string, bool) {
	if !s.known {
		return nil, false
	}
	cand := s.candidates(in)
	return cand, len(cand) > len(s.members)
}

// recorded notes a member list that was recorded.
func (s *syncSet) recorded(members []string) {
	s.members = slices.Clone(members)
	s.known = true
}

// releasedTid notes a release.
func (s *syncSet) releasedTid(tid storage.Tid) { s.released = max(s.released, tid) }

// removed returns the names in old that are not in new.
func removed(old, new []string) []string {
	var out []string
	for _, m := range old {
		if !slices.Contains(new, m) {
			out = append(out, m)
		}
	}
	return out
}

// Gate returns the commit gate for the feed's storage
// (storage.FileStorage.SetCommitGate): it returns nil when tid may become
// visible under the synchronous replication rules, having recorded the
// member list first when it changes (OnSyncChange). It fails with
// ErrSyncTimeout (strict mode) or OnSyncChange's error; the storage then
// keeps the batch invisible and asks again.
//
// Each call of Gate starts afresh, as for a new primary term: no member
// list is known, so the first release records one. Between releases the
// feed also records secondaries that caught up, until StopSync.
func (f *Feed) Gate() storage.CommitGate {
	f.syncMu.Lock()
	f.sync = syncSet{n: f.cfg.Synchronous, strict: f.cfg.Strict, grace: f.cfg.SyncGrace, timeout: f.cfg.CommitTimeout}
	f.syncMu.Unlock()
	f.mu.Lock()
	f.members, f.syncKnown, f.released = nil, false, 0
	f.syncOn = true
	f.mu.Unlock()
	return f.gate
}

// StopSync stops recording member changes outside gate calls (the node
// is no longer a synchronous primary; it also removes the gate).
func (f *Feed) StopSync() {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	f.mu.Lock()
	f.syncOn = false
	f.mu.Unlock()
}

// SyncMembers returns the recorded sync members, sorted.
func (f *Feed) SyncMembers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members)
}

func (f *Feed) gate(ctx context.Context, tid storage.Tid) error {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	start := time.Now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		in, wake := f.syncInput(tid)
		in.elapsed = time.Since(start)
		d := f.sync.decide(in)
		switch d.verdict {
		case syncRelease:
			if d.record {
				if err := f.recordMembers(ctx, d.members, fmt.Sprintf("commit %s", tid)); err != nil {
					return err
				}
			}
			f.sync.releasedTid(tid)
			f.mu.Lock()
			f.released = f.sync.released
			f.mu.Unlock()
			return nil
		case syncTimeout:
			return fmt.Errorf("%w: %d of %d secondaries acknowledged %s within %s",
				ErrSyncTimeout, d.acked, f.sync.n, tid, f.sync.timeout)
		}
		if timer == nil {
			timer = time.NewTimer(d.wait)
		} else {
			timer.Reset(d.wait)
		}
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// syncInput snapshots the acknowledgements, and returns a channel closed
// when they change.
func (f *Feed) syncInput(tid storage.Tid) (syncInput, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := syncInput{tid: tid, floor: f.cfg.Storage.LastTransaction(),
		acked: make(map[string]storage.Tid, len(f.acked)), connected: make(map[string]bool, len(f.connected))}
	for name, t := range f.acked {
		in.acked[name] = t
	}
	for name := range f.connected {
		in.connected[name] = true
	}
	return in, f.ackChanged
}

// recordMembers records a new member list (OnSyncChange) and then adopts
// it. The caller holds syncMu.
func (f *Feed) recordMembers(ctx context.Context, members []string, why string) error {
	old := f.sync.members
	if f.cfg.OnSyncChange != nil {
		if err := f.cfg.OnSyncChange(ctx, slices.Clone(members)); err != nil {
			return fmt.Errorf("record sync members %v: %w", members, err)
		}
	}
	f.sync.recorded(members)
	f.mu.Lock()
	f.members, f.syncKnown = slices.Clone(members), true
	f.mu.Unlock()
	if gone := removed(old, members); len(gone) > 0 {
		f.log.Warn("secondaries removed from the sync members", "removed", gone, "members", members, "at", why)
	}
	if added := removed(members, old); len(added) > 0 {
		f.log.Info("secondaries joined the sync members", "joined", added, "members", members, "at", why)
	}
	if len(members) < f.sync.n {
		f.log.Warn("synchronous replication degraded: fewer members than required",
			"members", members, "synchronous", f.sync.n, "strict", f.sync.strict)
	}
	return nil
}

// recordJoins adds caught-up secondaries to the members outside any gate
// call, so that an idle primary records them; a gate call in progress
// adds them itself when it releases.
func (f *Feed) recordJoins() {
	if !f.syncMu.TryLock() {
		return
	}
	defer f.syncMu.Unlock()
	f.mu.Lock()
	on := f.syncOn
	f.mu.Unlock()
	if !on {
		return
	}
	in, _ := f.syncInput(0)
	members, ok := f.sync.joins(in)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.CommitTimeout)
	defer cancel()
	if err := f.recordMembers(ctx, members, "catch-up"); err != nil {
		f.log.Warn("cannot record caught-up secondaries as sync members; will retry", "error", err)
	}
}

// mayJoin reports whether an acknowledgement from name may make it a
// member. The caller holds f.mu.
func (f *Feed) mayJoin(name string) bool {
	return f.syncOn && f.syncKnown && f.connected[name] > 0 && !slices.Contains(f.members, name) &&
		f.acked[name] >= max(f.released, f.cfg.Storage.LastTransaction())
}
