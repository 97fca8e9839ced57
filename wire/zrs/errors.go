package zrs

import (
	"errors"

	"github.com/zrs-go/zrs/wire/zeo"
)

// Sentinel errors. Errors returned by this package wrap one of these (test
// with errors.Is) together with a description naming the offending field or
// opcode.
var (
	// ErrMalformed reports a payload that is not a well-formed message:
	// truncated or trailing data, an unknown opcode or message type, a
	// field of the wrong type, length or value, nesting deeper than
	// zeo.MaxDepth.
	ErrMalformed = errors.New("malformed replication message")

	// ErrNotAllowed reports a well-formed zrs2.0 pickle using a construct a
	// zc.zrs primary never writes and that this package refuses to
	// interpret: a global other than _codecs.encode or bytes, a REDUCE of
	// anything else, memo opcodes, persistent ids, object construction.
	ErrNotAllowed = errors.New("construct not allowed in a replication message")

	// ErrUnknownProtocol reports a handshake naming a protocol this package
	// does not speak.
	ErrUnknownProtocol = errors.New("unknown replication protocol")

	// ErrBlobsNotSupported reports the zrs2.1 protocol (or a 'B' blob
	// record in a zrs2.0 stream): blob replication is not supported.
	ErrBlobsNotSupported = errors.New("blob replication (zrs2.1) is not supported")

	// ErrUnexpectedMessage reports a well-formed message arriving where the
	// protocol does not allow it: an 'S' or 'C' outside a transaction, a
	// 'T' inside one, a non-empty message from a zrs2.0 secondary after
	// its handshake, a zrs-go/1 message sent in the wrong direction.
	ErrUnexpectedMessage = errors.New("unexpected replication message")

	// ErrChecksum reports a checksum mismatch: the MD5 chain of a zrs2.0
	// stream or the CRC-32C of a zrs-go/1 frame.
	ErrChecksum = errors.New("replication checksum mismatch")

	// ErrUnsupported reports a value that cannot be encoded: a transaction
	// status other than ' ' or 'p', a Go value outside the pickle value
	// model, an integer Python could not write.
	ErrUnsupported = errors.New("value cannot be encoded")

	// ErrFrameTooLarge reports a message longer than the allowed maximum.
	// It is zeo.ErrFrameTooLarge, so that errors from zeo.FrameReader
	// (which reads frames of both protocols) match too.
	ErrFrameTooLarge = zeo.ErrFrameTooLarge
)
