package client

import (
	"errors"
	"fmt"

	"github.com/zrs-go/zrs/storage"
)

var (
	// ErrDisconnected is returned by calls made while no server is
	// connected, or whose connection was lost before the reply; nothing
	// was changed on the server by a read, so it is safe to retry.
	ErrDisconnected = errors.New("not connected to a ZEO server")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("client is closed")
	// ErrReadOnly is the server's ReadOnlyError.
	ErrReadOnly = storage.ErrReadOnly
)

// ServerError is an error reply the client has no better type for.
type ServerError struct {
	// Class is the exception's dotted class name.
	Class string
	Args  any
}

func (e *ServerError) Error() string { return fmt.Sprintf("server error %s: %v", e.Class, e.Args) }

// OutcomeUnknownError says a commit was sent but its connection was lost
// before the server answered tpc_finish (or vote): it may or may not have
// been committed. It is retryable once the caller has checked.
type OutcomeUnknownError struct {
	Err error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("commit outcome unknown: %v", e.Err)
}

func (e *OutcomeUnknownError) Unwrap() error { return e.Err }
