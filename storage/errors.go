package storage

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap them so callers can
// use errors.Is.
var (
	// ErrReadOnly is returned by write operations on a storage opened read-only.
	ErrReadOnly = errors.New("storage is read-only")
	// ErrClosed is returned by operations on a closed storage.
	ErrClosed = errors.New("storage is closed")
	// ErrLocked is returned by Open when another process holds NAME.lock.
	ErrLocked = errors.New("storage is locked by another process")
	// ErrWrongTransaction is ZODB's StorageTransactionError: a 2PC call for a
	// transaction that is not the one in progress, or out of order.
	ErrWrongTransaction = errors.New("storage transaction error")
	// ErrNoObject is ZODB's POSKeyError; *NoObjectError wraps it.
	ErrNoObject = errors.New("POSKeyError")
	// ErrConflict is ZODB's ConflictError; *ConflictError wraps it.
	ErrConflict = errors.New("ConflictError")
	// ErrCorrupt marks damaged data; *FormatError wraps it.
	ErrCorrupt = errors.New("corrupted FileStorage data")
	// ErrNoTransaction is returned when a tid names no transaction in the file.
	ErrNoTransaction = errors.New("no such transaction")
	// ErrTransactionInProgress is returned by operations that need the
	// storage to themselves (Rewind) while a transaction holds the commit
	// lock or finished transactions are not yet published.
	ErrTransactionInProgress = errors.New("a transaction is in progress")
	// ErrNotAcknowledged is returned by TpcFinish when the commit gate
	// (SetCommitGate) refused a transaction: it is on disk and stays
	// queued, becoming visible once a later gate call succeeds (or when
	// the storage is reopened), so the client must not assume either
	// outcome.
	ErrNotAcknowledged = errors.New("durable locally but not acknowledged by synchronous replicas; outcome unknown")
)

// NoObjectError says that an object does not exist (never created, deleted,
// or its creation undone) or has no revision with the asked serial. It has
// POSKeyError semantics.
type NoObjectError struct {
	Oid Oid
	// Serial is the revision asked for by LoadSerial, else zero.
	Serial Tid
	// Deleted is true when the object has a deletion record.
	Deleted bool
}

func (e *NoObjectError) Error() string {
	switch {
	case e.Serial != 0:
		return fmt.Sprintf("POSKeyError: oid %s has no revision %s", e.Oid, e.Serial)
	case e.Deleted:
		return fmt.Sprintf("POSKeyError: oid %s was deleted", e.Oid)
	}
	return fmt.Sprintf("POSKeyError: oid %s does not exist", e.Oid)
}

func (e *NoObjectError) Unwrap() error { return ErrNoObject }

// ConflictError says that a store or check was based on a serial that is no
// longer current. Committed is the current serial, Given the one the client
// had. Read is true for CheckCurrentSerial (ZODB's ReadConflictError).
type ConflictError struct {
	Oid       Oid
	Committed Tid
	Given     Tid
	Read      bool
}

func (e *ConflictError) Error() string {
	kind := "ConflictError"
	if e.Read {
		kind = "ReadConflictError"
	}
	return fmt.Sprintf("%s: oid %s, serial this txn started with %s, serial currently committed %s",
		kind, e.Oid, e.Given, e.Committed)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// FormatError reports damaged data at a byte offset of a file.
type FormatError struct {
	Path   string
	Offset int64
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%s: %s at offset %d", e.Path, e.Reason, e.Offset)
}

func (e *FormatError) Unwrap() error { return ErrCorrupt }
