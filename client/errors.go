package client

import (
	"errors"
	"fmt"

	"github.com/zrs-go/zrs/storage"
)

var (
	// ErrRetryable is matched (errors.Is) by every error after which the
	// same call, or the same transaction in a new Txn, may simply be tried
	// again: the connection was lost, a failover is in progress, or the
	// cluster could not acknowledge a commit for now. IsRetryable tests
	// for it. Whether a commit needs checking first is told by its type:
	// *OutcomeUnknownError (it may have been committed) or
	// *NotCommittedError (it certainly was not).
	ErrRetryable = errors.New("retryable")
	// ErrDisconnected is returned by calls made while no server is
	// connected, or whose connection was lost before the reply; nothing
	// was changed on the server by a read, so it is safe to retry. It
	// matches ErrRetryable.
	ErrDisconnected error = &retryableSentinel{"not connected to a ZEO server"}
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("client is closed")
	// ErrReadOnly is the server's ReadOnlyError. On its own it is not
	// retryable (the client or the server is read-only by
	// configuration); a commit refused by a server that accepted the
	// client read-write and was demoted since is a *NotCommittedError
	// wrapping it, which is.
	ErrReadOnly = storage.ErrReadOnly
	// ErrTransient is matched by a *TransientError.
	ErrTransient = errors.New("transient storage error")
	// ErrStaleServer is matched by a *StaleServerError.
	ErrStaleServer = errors.New("stale server")
)

// IsRetryable reports whether err says that trying again, typically
// after the client has reconnected to the current primary, may succeed:
// the connection was lost (ErrDisconnected), a commit was interrupted
// (*NotCommittedError, *OutcomeUnknownError: check first whether the
// latter committed), the server was demoted during a failover, or it
// could not get the commit acknowledged by its synchronous replicas in
// time (*TransientError). Conflicts, read-only configurations, closed
// clients and context errors of the caller are not retryable.
func IsRetryable(err error) bool { return errors.Is(err, ErrRetryable) }

// retryableSentinel is a sentinel error that matches ErrRetryable.
type retryableSentinel struct{ msg string }

func (e *retryableSentinel) Error() string { return e.msg }

func (e *retryableSentinel) Is(target error) bool { return target == ErrRetryable }

// ServerError is an error reply the client has no better type for.
type ServerError struct {
	// Class is the exception's dotted class name.
	Class string
	Args  any
}

func (e *ServerError) Error() string { return fmt.Sprintf("server error %s: %v", e.Class, e.Args) }

// TransientClass is the exception class a zrs primary answers with when
// it cannot accept or acknowledge a commit for now: its synchronous
// replicas did not acknowledge it in time, or its ZooKeeper session is
// not usable (cluster.md, "Fencing" and "Synchronous replication").
const TransientClass = "ZODB.POSException.StorageTransientError"

// TransientError is the server's StorageTransientError: the operation
// failed for a reason expected to pass (see TransientClass). It matches
// ErrTransient and ErrRetryable. A commit that fails with it is wrapped
// in a *NotCommittedError (refused at the vote) or an
// *OutcomeUnknownError (refused at tpc_finish: the primary may have
// written it locally).
type TransientError struct {
	// Args are the exception's arguments.
	Args any
}

func (e *TransientError) Error() string {
	return fmt.Sprintf("transient server error (%s): %v", TransientClass, e.Args)
}

func (e *TransientError) Is(target error) bool {
	return target == ErrTransient || target == ErrRetryable
}

// OutcomeUnknownError says a commit was sent but its connection was lost
// (or the server failed transiently) before the server answered
// tpc_finish: it may or may not have been committed. It is retryable
// once the caller has checked, e.g. by loading an object the transaction
// wrote.
type OutcomeUnknownError struct {
	Err error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("commit outcome unknown (tpc_finish sent, no answer; it may have been committed): %v", e.Err)
}

func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// Is makes an OutcomeUnknownError match ErrRetryable.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrRetryable }

// NotCommittedError says a commit was interrupted before the server
// could apply it, by a lost connection, a failover (the server was
// demoted: Err wraps ErrReadOnly) or a transient refusal: nothing was
// committed, and the same changes may be committed again in a new Txn
// (after re-reading, if they depend on what was read). It matches
// ErrRetryable and whatever Err matches (ErrDisconnected, ErrReadOnly,
// ErrTransient).
type NotCommittedError struct {
	// Stage is the step at which the commit failed: "connect" (no
	// server), "vote" (the server refused the vote, or the connection was
	// lost before its answer; ZEO aborts a transaction that was not
	// finished).
	Stage string
	Err   error
}

func (e *NotCommittedError) Error() string {
	return fmt.Sprintf("commit not applied (failed at %s; nothing was committed, retry): %v", e.Stage, e.Err)
}

func (e *NotCommittedError) Unwrap() error { return e.Err }

// Is makes a NotCommittedError match ErrRetryable.
func (e *NotCommittedError) Is(target error) bool { return target == ErrRetryable }

// StaleServerError says the client refused a server: its epoch is lower
// than the highest the client has seen (a deposed primary, or a node
// that missed a failover), or its last transaction is older than one the
// client has already seen (it lost data; see Options.AllowOlderServer).
// The client then tries the next address, or the same after a backoff.
// It matches ErrStaleServer.
type StaleServerError struct {
	Addr string
	// Epoch is the server's epoch (0: it reports none) and Seen the
	// highest the client had seen.
	Epoch, Seen uint64
	// LastTid is the server's last transaction and SeenTid the newest
	// the client had seen.
	LastTid, SeenTid storage.Tid
}

func (e *StaleServerError) Error() string {
	if e.Epoch < e.Seen {
		return fmt.Sprintf("refusing server %s: its epoch %d is lower than epoch %d already seen (a deposed primary?)",
			e.Addr, e.Epoch, e.Seen)
	}
	return fmt.Sprintf("refusing server %s: its last transaction %s is older than %s already seen (it lost data)",
		e.Addr, e.LastTid, e.SeenTid)
}

// Is makes a StaleServerError match ErrStaleServer.
func (e *StaleServerError) Is(target error) bool { return target == ErrStaleServer }

// demotedError is a ReadOnlyError from a server that accepted the client
// read-write: it was demoted since (a failover), so the call may succeed
// once the client follows the new primary.
type demotedError struct{ err error }

func (e *demotedError) Error() string {
	return fmt.Sprintf("server demoted since the client connected (failover?): %v", e.err)
}

func (e *demotedError) Unwrap() error { return e.err }

func (e *demotedError) Is(target error) bool { return target == ErrRetryable }
