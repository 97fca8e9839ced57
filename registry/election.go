package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"
)

var (
	// ErrLostRace: another node won the election (the epoch moved on or
	// the primary znode exists).
	ErrLostRace = errors.New("registry: lost the election race")
	// ErrNotPrimary: this session does not hold the primary znode of its
	// term (any more): another node won, or the session was replaced.
	ErrNotPrimary = errors.New("registry: not the primary")
)

// ElectionError is the error of a RunForPrimary that did not win.
type ElectionError struct {
	// LostRace: another node won; do not retry this epoch version.
	LostRace bool
	// Unknown: the answer was lost with the connection and could not be
	// recovered (the session expired meanwhile); re-read the epoch.
	Unknown bool
	Err     error
}

func (e *ElectionError) Error() string {
	switch {
	case e.LostRace:
		return fmt.Sprintf("registry: lost the election race: %v", e.Err)
	case e.Unknown:
		return fmt.Sprintf("registry: election outcome unknown: %v", e.Err)
	}
	return fmt.Sprintf("registry: running for primary: %v", e.Err)
}

func (e *ElectionError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrLostRace) true when another node won.
func (e *ElectionError) Is(target error) bool { return target == ErrLostRace && e.LostRace }

// Term is what winning an election gives: the new epoch, the epoch
// znode's version after the increment (later writes of the primary are
// conditional on it), and the session that holds the primary znode.
type Term struct {
	Epoch        uint64
	EpochVersion int32
	SessionID    int64
}

// RunForPrimary runs for primary in one Multi: set the epoch znode to
// newEpoch if its version is still expectedEpochVersion (as read with
// ReadEpoch), and create the ephemeral primary znode holding rec (with
// rec.Epoch = newEpoch). Exactly one of any number of sessions running
// with the same expectedEpochVersion can win. A loss is an *ElectionError
// with LostRace set (errors.Is(err, ErrLostRace)); any other failure
// leaves the epoch and the primary as they were, except when the error
// says the outcome is Unknown.
func (s *Session) RunForPrimary(ctx context.Context, expectedEpochVersion int32, newEpoch uint64, rec PrimaryRecord) (Term, error) {
	if rec.Epoch != 0 && rec.Epoch != newEpoch {
		return Term{}, fmt.Errorf("registry: primary record for epoch %d, running for epoch %d", rec.Epoch, newEpoch)
	}
	rec.Epoch = newEpoch
	data, err := json.Marshal(rec)
	if err != nil {
		return Term{}, err
	}
	st := s.Status()
	if st.State != StateConnected {
		return Term{}, &ElectionError{Err: ErrNotConnected}
	}
	sid := st.SessionID
	resp, err := call(ctx, s, func() ([]zk.MultiResponse, error) {
		return s.conn.Multi(
			&zk.SetDataRequest{Path: s.paths.Epoch, Data: formatEpoch(newEpoch), Version: expectedEpochVersion},
			&zk.CreateRequest{Path: s.paths.Primary, Data: data, Acl: zk.WorldACL(zk.PermAll), Flags: zk.FlagEphemeral},
		)
	})
	if err == nil {
		if len(resp) == 0 || resp[0].Stat == nil {
			return Term{}, &ElectionError{Unknown: true, Err: errors.New("multi answered without the epoch's new version")}
		}
		term := Term{Epoch: newEpoch, EpochVersion: resp[0].Stat.Version, SessionID: sid}
		s.log.Info("won the election", "epoch", newEpoch, "session", sessionHex(sid))
		return term, nil
	}
	if lost := raceError(resp, err); lost != nil {
		return Term{}, &ElectionError{LostRace: true, Err: lost}
	}
	if !isConnErr(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if ctx.Err() != nil {
			return Term{}, &ElectionError{Unknown: true, Err: err}
		}
		return Term{}, &ElectionError{Err: err}
	}
	// The answer was lost with the connection: find out what happened.
	return s.electionOutcome(ctx, sid, expectedEpochVersion, newEpoch, err)
}

// raceError returns the error saying another node won, if err or one of
// the Multi's results is one.
func raceError(resp []zk.MultiResponse, err error) error {
	if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) {
		return err
	}
	for _, r := range resp {
		if errors.Is(r.Error, zk.ErrBadVersion) || errors.Is(r.Error, zk.ErrNodeExists) {
			return r.Error
		}
	}
	return nil
}

// electionOutcome resolves a RunForPrimary whose answer was lost: in the
// same session, the primary znode tells; after an expiry it is gone
// anyway.
func (s *Session) electionOutcome(ctx context.Context, sid int64, expectedVersion int32, newEpoch uint64, cause error) (Term, error) {
	if err := s.WaitConnected(ctx); err != nil {
		return Term{}, &ElectionError{Unknown: true, Err: fmt.Errorf("%v; then: %w", cause, err)}
	}
	if st := s.Status(); st.SessionID != sid {
		return Term{}, &ElectionError{Unknown: true, Err: fmt.Errorf("%v; then the session expired", cause)}
	}
	view, err := s.ReadPrimary(ctx)
	if err != nil {
		return Term{}, &ElectionError{Unknown: true, Err: fmt.Errorf("%v; then: %w", cause, err)}
	}
	ep, err := s.ReadEpoch(ctx)
	if err != nil {
		return Term{}, &ElectionError{Unknown: true, Err: fmt.Errorf("%v; then: %w", cause, err)}
	}
	switch {
	case view.Present && view.Owner == sid && ep.Value == newEpoch:
		s.log.Info("won the election (the answer was lost; checked)", "epoch", newEpoch, "session", sessionHex(sid))
		return Term{Epoch: newEpoch, EpochVersion: ep.Version, SessionID: sid}, nil
	case view.Present || ep.Version != expectedVersion:
		return Term{}, &ElectionError{LostRace: true, Err: fmt.Errorf("%v; then found epoch %d and primary %q", cause, ep.Value, view.Record.Name)}
	}
	return Term{}, &ElectionError{Err: cause} // not applied: may run again
}

// VerifyPrimary checks, with an up-to-date read (sync first), that this
// session holds the primary znode of term: the session is term's, the
// znode exists with it as EphemeralOwner and holds term's epoch. A
// primary must pass it before accepting commits again after a
// disconnection. It returns ErrNotConnected without a session, an error
// wrapping ErrNotPrimary when the check fails.
func (s *Session) VerifyPrimary(ctx context.Context, term Term) error {
	st := s.Status()
	if st.State != StateConnected {
		return ErrNotConnected
	}
	if st.SessionID != term.SessionID {
		return fmt.Errorf("%w: the session of epoch %d (%s) was replaced by %s", ErrNotPrimary,
			term.Epoch, sessionHex(term.SessionID), sessionHex(st.SessionID))
	}
	if _, err := call(ctx, s, func() (string, error) { return s.conn.Sync(s.paths.Primary) }); err != nil {
		return err
	}
	r, err := call(ctx, s, func() (primaryResult, error) { return s.getPrimary(false) })
	if err != nil {
		return err
	}
	v := r.view
	switch {
	case !v.Present:
		return fmt.Errorf("%w: there is no primary znode", ErrNotPrimary)
	case v.Owner != term.SessionID:
		return fmt.Errorf("%w: the primary znode is held by session %s (%q, epoch %d)", ErrNotPrimary,
			sessionHex(v.Owner), v.Record.Name, v.Record.Epoch)
	case v.Record.Epoch != term.Epoch:
		return fmt.Errorf("%w: the primary znode is of epoch %d, not %d", ErrNotPrimary, v.Record.Epoch, term.Epoch)
	}
	return nil
}

// Resign deletes the primary znode if this session holds it for term and
// the epoch has not moved on (a planned switchover); others see the
// primary gone at once.
func (s *Session) Resign(ctx context.Context, term Term) error {
	if err := s.VerifyPrimary(ctx, term); err != nil {
		return err
	}
	_, err := call(ctx, s, func() ([]zk.MultiResponse, error) {
		return s.conn.Multi(
			&zk.CheckVersionRequest{Path: s.paths.Epoch, Version: term.EpochVersion},
			&zk.DeleteRequest{Path: s.paths.Primary, Version: -1},
		)
	})
	if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("%w: %v", ErrNotPrimary, err)
	}
	if err == nil {
		s.log.Info("resigned as primary", "epoch", term.Epoch)
	}
	return err
}

// WriteSync writes the sync znode as the primary of term: only while the
// session is term's and the epoch znode is still at term's version, in
// one Multi, so a deposed primary cannot overwrite its successor's. A
// zero rec.Epoch is term's. It fails with an error wrapping ErrNotPrimary
// when deposed, ErrNotConnected without a session.
func (s *Session) WriteSync(ctx context.Context, term Term, rec SyncRecord) error {
	if rec.Epoch == 0 {
		rec.Epoch = term.Epoch
	}
	if rec.Members == nil {
		rec.Members = []string{}
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	st := s.Status()
	if st.State != StateConnected {
		return ErrNotConnected
	}
	if st.SessionID != term.SessionID {
		return fmt.Errorf("%w: the session of epoch %d was replaced", ErrNotPrimary, term.Epoch)
	}
	check := &zk.CheckVersionRequest{Path: s.paths.Epoch, Version: term.EpochVersion}
	_, err = call(ctx, s, func() ([]zk.MultiResponse, error) {
		return s.conn.Multi(check, &zk.SetDataRequest{Path: s.paths.Sync, Data: data, Version: -1})
	})
	if errors.Is(err, zk.ErrNoNode) { // sync missing: create it
		_, err = call(ctx, s, func() ([]zk.MultiResponse, error) {
			return s.conn.Multi(check, &zk.CreateRequest{Path: s.paths.Sync, Data: data, Acl: zk.WorldACL(zk.PermAll)})
		})
	}
	if errors.Is(err, zk.ErrBadVersion) {
		return fmt.Errorf("%w: the epoch moved on from %d", ErrNotPrimary, term.Epoch)
	}
	if err != nil {
		return fmt.Errorf("registry: writing sync: %w", err)
	}
	return nil
}
