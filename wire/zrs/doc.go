// Package zrs implements the encodings of the two replication streams a
// node speaks: "zrs2.0", the protocol of stock zc.zrs primaries and
// secondaries, and "zrs-go/1", our own protocol between our nodes (epoch,
// divergence check, acknowledgements, heartbeats).
//
// It holds no networking loop and writes no storage: a replication server
// or client reads frames with zeo.FrameReader (the framing of both
// protocols is ZEO's 4-byte big-endian length prefix; zero-length frames
// are legal and read as empty payloads), hands payloads to the decoders
// here, and writes what the encoders here return.
//
// # zrs2.0 (zc.zrs compatible)
//
// The secondary connects and sends two messages: the protocol id "zrs2.0"
// and its last tid as 8 raw bytes (AppendHandshake; the primary side uses
// ParseProtocol, or IdentifyHandshake on a port serving both protocols,
// and ParseStartTid). "zrs2.1" (blobs) is refused with
// ErrBlobsNotSupported. Afterwards the secondary may only send empty
// keep-alive messages (KeepAliveFrame, CheckKeepAlive); a zc.zrs primary
// drops a secondary sending more than 8 bytes (MaxSecondaryMessage).
//
// The primary then sends, per transaction in file order, pickles of
//
//	('T', (tid, status, user, description, extension_dict))
//	('S', (oid, tid, '', data_txn or None))   then one raw message: the data ('' = None)
//	...
//	('C', (md5_digest,))
//
// The pickles are protocol 1 written by CPython's pickler in fast mode (no
// memo): strs are BINUNICODE, tuples MARK ... TUPLE, non-empty bytes are
// _codecs.encode(latin-1 str, 'latin1') REDUCE calls and empty bytes are
// __builtin__.bytes(); in extension dicts, ints are BININT1, BININT2,
// BININT or LONG text, bools INT 01/00, floats BINFLOAT, lists and dicts
// are filled by APPEND/SETITEM for one item, else by APPENDS/SETITEMS in
// batches of 1000, as CPython does. The MD5
// chain (Chain) is seeded with the 8-byte start tid and fed every payload
// after the handshake; a 'C' carries the digest of everything before it
// and is then fed too.
//
// TxnEncoder turns a storage.TxnRecord into exactly the payloads zc.zrs
// sends for it; Receiver does the reverse, one payload at a time, and
// yields a transaction only after its checksum verified. DecodeMessage
// and AppendMessage convert single pickled messages.
//
// # zrs-go/1 (our protocol)
//
// The same framing; every message starts with a type byte, integers are
// big-endian, and a message must fill its frame exactly (MaxFrameSize at
// most). The secondary opens with Hello and the upstream replies with one
// Answer; on AnswerStream, Txn messages follow and both sides send
// Heartbeats when idle; the secondary sends Ack after it durably applied
// a transaction, and the upstream sends Release whenever more of its
// transactions became visible (acknowledged), so that a secondary shows
// its readers nothing its upstream has not released.
//
//	Hello      0x01  proto_len u8 | "zrs-go/1" | name_len u16 | node name (UTF-8, 1-255 bytes)
//	                 | epoch u64 | last tid u64 | TxnHash of the last transaction [32] (zero if none)
//	Answer     0x02  kind u8 (1 stream, 2 ahead, 3 diverged, 4 refused) | epoch u64
//	                 | tid u64 (stream, ahead: upstream's last tid; diverged: last common tid; refused: 0)
//	                 | behind u64 (stream: transactions the secondary lacks; otherwise 0)
//	                 | reason_len u16 | reason (UTF-8, refused only, non-empty)
//	Txn        0x03  tid u64 | status u8 (' ' or 'p') | user_len u32 | user | desc_len u32 | description
//	                 | ext_len u32 | extension (the stored pickle) | nrecords u32
//	                 | nrecords × (oid u64 | tid u64 | data_txn u64 (0 = None) | data_len u32 | data (empty = None))
//	                 | CRC-32C (Castagnoli) u32 of every preceding byte of the message
//	Heartbeat  0x04  sender's last tid u64 | sender's clock, Unix nanoseconds i64
//	Ack        0x05  durably applied tid u64
//	Release    0x06  every transaction up to this tid is visible upstream: tid u64
//
// TxnHash, the hash in Hello, is the SHA-256 of "zrs-go/1 txn\x00" followed
// by the Txn body (from tid to the last record, without type byte and
// CRC); both ends compute it from their own storage.
//
// # Promises
//
//   - zrs2.0 encoding is byte for byte what zc.zrs (CPython 3) sends, as
//     checked against captured streams, for extension dicts made of None,
//     bool, int, float, str, bytes, tuple, list and dict (zeo's value
//     model). Decoding then re-encoding a captured message reproduces it.
//   - zrs-go/1 encoding is canonical: a message that decodes re-encodes to
//     the same bytes.
//   - Decoders never panic on untrusted input, take time and memory linear
//     in its size, nest at most zeo.MaxDepth containers, and name the
//     offending field or opcode in errors that wrap the package's sentinel
//     errors. The zrs-go/1 decoder checks every length and count against
//     the payload before allocating for it, so a frame cannot announce more
//     than it holds (a Txn allocates its record structs, at most 2.6 bytes
//     per payload byte; data and strings alias the payload). The zrs2.0
//     decoder admits only the globals _codecs.encode and
//     __builtin__/builtins.bytes, each only in the form zc.zrs writes.
//   - No mutable package-level state. Chain, TxnEncoder and Receiver must
//     not be used by more than one goroutine at a time; everything else is
//     safe for concurrent use.
//
// # Limits
//
//   - No blobs: zrs2.1 and 'B' records are refused.
//   - ZODB versions are gone: an 'S' with a non-empty version is malformed.
//   - zc.zrs sends record data None and empty bytes alike (an empty message); both
//     become nil here, and zrs-go/1 and TxnHash treat empty data as None.
//   - A received extension dict is stored as zeo.EncodeExtension pickles
//     it (what ZODB stores for it); extension pickles holding objects
//     outside the value model (e.g. datetime) cannot be replicated.
//   - Python 2 primaries' strs (BINSTRING) are accepted where zc.zrs sends
//     bytes, and in extension dicts become str when ASCII, bytes otherwise.
package zrs
