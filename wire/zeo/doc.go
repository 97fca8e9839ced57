// Package zeo implements the wire encodings of the ZEO 5 client/server
// protocol spoken by Python ZEO 5 and 6 ClientStorage: framing, the protocol
// handshake, the two message encodings ("Z": pickle, "M": msgpack), the
// exception replies the client understands and the ruok status JSON.
//
// It holds no server logic. A server reads frames with a [FrameReader],
// negotiates the encoding with [ParseClientHandshake], decodes each following
// frame with the [Codec] of that encoding into a [Message], and writes
// replies encoded by the same codec through a [FrameWriter].
// [EncodeExtension] and [DecodeExtension] convert the transaction extension
// dict sent in tpc_begin to and from the pickle ZODB stores in transaction
// records.
//
// # Values
//
// Message arguments and results use a small value model mirroring the Python
// objects the protocol carries:
//
//	Python          Go
//	None            nil
//	bool            bool
//	int             int64, or *big.Int when it does not fit in an int64
//	float           float64
//	str             string
//	bytes           []byte
//	tuple           Tuple
//	list            List
//	dict            *Dict (insertion-ordered)
//
// Decoders return exactly these types. Encoders also accept the other Go
// integer types, float32 and a *big.Int of any size.
//
// # Promises
//
//   - Encoding is byte-for-byte what the Python server emits: the pickle codec
//     reproduces zodbpickle's protocol-3 fast-mode pickler (including CPython's
//     choice of integer opcodes and its APPENDS/SETITEMS batching), the msgpack
//     codec reproduces msgpack-python's packb(use_bin_type=True).
//   - Decoding then re-encoding a message from a Python client or server
//     reproduces its bytes exactly (see the session replay tests). Bytes stay
//     bytes and strings stay strings in both encodings, and dict order is kept.
//   - Decoders accept only data: pickles that reference globals, call
//     constructors (REDUCE, BUILD, NEWOBJ...), use persistent ids or share a
//     list or dict through the memo are rejected with [ErrNotAllowed];
//     msgpack extension types likewise.
//   - Decoding untrusted input never panics, takes time and memory
//     proportional to the input size and nests at most [MaxDepth]
//     containers.
//     [FrameReader] never allocates a frame's declared size before its bytes
//     have arrived.
//   - The package has no mutable package-level state; codecs are stateless
//     values safe for concurrent use. A FrameReader or FrameWriter must not be
//     used by more than one goroutine at a time.
//
// Deadlines and cancellation are the caller's business (for example
// net.Conn.SetReadDeadline); everything here works on io.Reader and io.Writer.
package zeo
