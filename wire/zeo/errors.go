package zeo

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (test
// with errors.Is) together with a description of the offending input.
var (
	// ErrFrameTooLarge reports a frame longer than the configured maximum.
	ErrFrameTooLarge = errors.New("frame too large")

	// ErrBadHandshake reports a handshake message that is neither a
	// supported protocol version nor the ruok probe.
	ErrBadHandshake = errors.New("bad protocol handshake")

	// ErrMalformed reports a payload that is not a well-formed encoded value
	// or message: truncated or invalid data, trailing bytes, a top-level
	// value that is not a (msgid, flag, method, args) tuple, unhashable dict
	// keys, or nesting deeper than MaxDepth.
	ErrMalformed = errors.New("malformed message")

	// ErrNotAllowed reports a well-formed payload using a construct that
	// ZEO messages never need and that this package refuses to interpret:
	// pickle globals, object construction and persistent ids, lists or
	// dicts shared through the memo, msgpack extension types.
	ErrNotAllowed = errors.New("construct not allowed in a ZEO message")

	// ErrUnsupportedValue reports a Go value that cannot be encoded: a type
	// outside the value model, or an integer out of the encoding's range.
	ErrUnsupportedValue = errors.New("unsupported value")
)
