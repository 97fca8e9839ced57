package zrs

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"unicode/utf8"

	"github.com/zrs-go/zrs/storage"
)

// ProtocolGo1 is the protocol id of our own replication protocol, carried
// in its Hello message.
const ProtocolGo1 = "zrs-go/1"

// MaxFrameSize is the largest zrs-go/1 message: encoders refuse larger
// ones and decoders reject them, both with ErrFrameTooLarge. A whole
// transaction travels in one message. Read zrs-go/1 frames with
// zeo.NewFrameReader(conn, MaxFrameSize), which allocates only as bytes
// arrive.
const MaxFrameSize = 1 << 30

// MaxNodeName is the longest node name a Hello carries, in bytes.
const MaxNodeName = 255

// HashSize is the size of a TxnHash.
const HashSize = sha256.Size

// Go1Type is the first byte of every zrs-go/1 message.
type Go1Type byte

// The zrs-go/1 message types.
const (
	TypeHello     Go1Type = 0x01 // secondary → upstream, first message
	TypeAnswer    Go1Type = 0x02 // upstream → secondary, reply to Hello
	TypeTxn       Go1Type = 0x03 // upstream → secondary
	TypeHeartbeat Go1Type = 0x04 // both ways
	TypeAck       Go1Type = 0x05 // secondary → upstream
	TypeRelease   Go1Type = 0x06 // upstream → secondary
)

// String names the type.
func (t Go1Type) String() string {
	switch t {
	case TypeHello:
		return "Hello"
	case TypeAnswer:
		return "Answer"
	case TypeTxn:
		return "Txn"
	case TypeHeartbeat:
		return "Heartbeat"
	case TypeAck:
		return "Ack"
	case TypeRelease:
		return "Release"
	}
	return fmt.Sprintf("Go1Type(%#02x)", byte(t))
}

// Fixed sizes of zrs-go/1 messages and fields.
const (
	helloFixed     = 1 + 1 + len(ProtocolGo1) + 2 + 8 + 8 + HashSize // without the name
	answerFixed    = 1 + 1 + 8 + 8 + 8 + 2                           // without the reason
	heartbeatSize  = 1 + 8 + 8
	ackSize        = 1 + 8
	releaseSize    = 1 + 8
	txnFixed       = 1 + 8 + 1 + 4 + 4 + 4 + 4 + crcSize // without strings and records
	txnRecordFixed = 8 + 8 + 8 + 4                       // without data
	crcSize        = 4
)

// Go1Message is a zrs-go/1 message: *Hello, *Answer, *Txn, *Heartbeat,
// *Ack or *Release.
type Go1Message interface {
	Go1Type() Go1Type
}

// Hello is the secondary's first message: who it is, the highest epoch it
// has seen, and where its data ends.
type Hello struct {
	// Node is the secondary's node name (1 to MaxNodeName bytes of UTF-8).
	Node string
	// Epoch is the highest epoch the secondary has seen; the upstream
	// refuses a secondary that has seen a higher epoch than its own.
	Epoch uint64
	// LastTid is the secondary's last transaction, 0 when it is empty.
	LastTid storage.Tid
	// LastHash is TxnHash of that transaction, zero when it is empty.
	LastHash [HashSize]byte
}

// Go1Type returns TypeHello.
func (*Hello) Go1Type() Go1Type { return TypeHello }

// AnswerKind says how the upstream answers a Hello.
type AnswerKind byte

// The answers to a Hello.
const (
	// AnswerStream: Txn messages follow, starting with the first
	// transaction after the secondary's last tid. Answer.Tid is the
	// upstream's last tid.
	AnswerStream AnswerKind = 1
	// AnswerAhead: the secondary's last tid is later than the upstream's
	// last tid (Answer.Tid). The upstream closes the connection.
	AnswerAhead AnswerKind = 2
	// AnswerDiverged: the secondary's last transaction is not in the
	// upstream's history, or has a different hash. Answer.Tid is the
	// newest tid both have with the same hash (0: none). The upstream
	// closes the connection.
	AnswerDiverged AnswerKind = 3
	// AnswerRefused: the upstream will not serve this secondary, for
	// Answer.Reason (for example a stale epoch). Answer.Tid is 0.
	AnswerRefused AnswerKind = 4
)

// String names the answer.
func (k AnswerKind) String() string {
	switch k {
	case AnswerStream:
		return "stream"
	case AnswerAhead:
		return "ahead"
	case AnswerDiverged:
		return "diverged"
	case AnswerRefused:
		return "refused"
	}
	return fmt.Sprintf("AnswerKind(%d)", byte(k))
}

// Answer is the upstream's reply to a Hello.
type Answer struct {
	Kind AnswerKind
	// Epoch is the upstream's current epoch. A secondary refuses a stream
	// from an epoch lower than the highest it has seen.
	Epoch uint64
	// Tid depends on Kind, see AnswerKind.
	Tid storage.Tid
	// Behind is, for AnswerStream, how many transactions the upstream has
	// after the secondary's last one: what the stream will send before it
	// is live. It is 0 for the other kinds.
	Behind uint64
	// Reason explains AnswerRefused (UTF-8, at most 65535 bytes); it is
	// empty for the other kinds.
	Reason string
}

// Go1Type returns TypeAnswer.
func (*Answer) Go1Type() Go1Type { return TypeAnswer }

// Txn carries one whole transaction.
type Txn struct {
	// Record is the transaction. Only Tid, Status (' ' or 'p'), User,
	// Description, Extension and the records' Oid, Tid, DataTxn and Data
	// travel; empty Data travels as None (nil).
	Record *storage.TxnRecord
}

// Go1Type returns TypeTxn.
func (*Txn) Go1Type() Go1Type { return TypeTxn }

// Heartbeat is sent both ways when nothing else flows, to detect dead
// connections and measure lag.
type Heartbeat struct {
	// LastTid is the sender's last transaction (for a secondary: the last
	// one durably applied).
	LastTid storage.Tid
	// UnixNano is the sender's clock when it sent the heartbeat.
	UnixNano int64
}

// Go1Type returns TypeHeartbeat.
func (*Heartbeat) Go1Type() Go1Type { return TypeHeartbeat }

// Ack reports that the secondary has durably applied every transaction up
// to and including Tid.
type Ack struct {
	Tid storage.Tid
}

// Go1Type returns TypeAck.
func (*Ack) Go1Type() Go1Type { return TypeAck }

// Release reports that every transaction up to and including Tid is
// visible on the upstream: acknowledged to its clients, or held there in
// turn for its own upstream's release. Txn messages carry transactions
// once durable, before that, so that a synchronous primary can wait for
// their Acks; a secondary that must not show what a failover could lose
// keeps them invisible until a Release covers them. Tid may be ahead of
// the transactions sent so far (a secondary catching up).
type Release struct {
	Tid storage.Tid
}

// Go1Type returns TypeRelease.
func (*Release) Go1Type() Go1Type { return TypeRelease }

// IdentifyHandshake classifies the first message of a secondary on a port
// serving both protocols: ProtocolZRS20 for a stock zc.zrs secondary
// (whose second message is its start tid), ProtocolGo1 when p is a
// zrs-go/1 Hello (decode it with DecodeGo1). zrs2.1 yields an error
// wrapping ErrBlobsNotSupported, anything else ErrUnknownProtocol.
func IdentifyHandshake(p []byte) (string, error) {
	if len(p) > 0 && Go1Type(p[0]) == TypeHello {
		return ProtocolGo1, nil
	}
	if err := ParseProtocol(p); err != nil {
		return "", err
	}
	return ProtocolZRS20, nil
}

// AppendGo1 appends the encoding of m to dst (without the frame's length
// prefix).
func AppendGo1(dst []byte, m Go1Message) ([]byte, error) {
	start := len(dst)
	switch m := m.(type) {
	case *Hello:
		if len(m.Node) == 0 || len(m.Node) > MaxNodeName || !utf8.ValidString(m.Node) {
			return dst, fmt.Errorf("zrs: Hello node name of %d bytes: want 1 to %d bytes of UTF-8: %w", len(m.Node), MaxNodeName, ErrUnsupported)
		}
		if m.LastTid == 0 && m.LastHash != ([HashSize]byte{}) {
			return dst, fmt.Errorf("zrs: Hello with no last tid but a last hash: %w", ErrUnsupported)
		}
		dst = append(dst, byte(TypeHello), byte(len(ProtocolGo1)))
		dst = append(dst, ProtocolGo1...)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Node)))
		dst = append(dst, m.Node...)
		dst = binary.BigEndian.AppendUint64(dst, m.Epoch)
		dst = binary.BigEndian.AppendUint64(dst, uint64(m.LastTid))
		return append(dst, m.LastHash[:]...), nil
	case *Answer:
		if m.Kind < AnswerStream || m.Kind > AnswerRefused {
			return dst, fmt.Errorf("zrs: Answer kind %d: %w", m.Kind, ErrUnsupported)
		}
		if (m.Kind == AnswerRefused) != (m.Reason != "") || len(m.Reason) > math.MaxUint16 || !utf8.ValidString(m.Reason) {
			return dst, fmt.Errorf("zrs: Answer %s with a %d-byte reason: only refusals have one, of 1 to 65535 bytes of UTF-8: %w", m.Kind, len(m.Reason), ErrUnsupported)
		}
		if m.Kind == AnswerRefused && m.Tid != 0 {
			return dst, fmt.Errorf("zrs: Answer refused with tid %s: %w", m.Tid, ErrUnsupported)
		}
		dst = append(dst, byte(TypeAnswer), byte(m.Kind))
		if m.Kind != AnswerStream && m.Behind != 0 {
			return dst, fmt.Errorf("zrs: Answer %s with a backlog: %w", m.Kind, ErrUnsupported)
		}
		dst = binary.BigEndian.AppendUint64(dst, m.Epoch)
		dst = binary.BigEndian.AppendUint64(dst, uint64(m.Tid))
		dst = binary.BigEndian.AppendUint64(dst, m.Behind)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Reason)))
		return append(dst, m.Reason...), nil
	case *Txn:
		if m.Record == nil {
			return dst, fmt.Errorf("zrs: Txn without a record: %w", ErrUnsupported)
		}
		t := m.Record
		if t.Status != storage.StatusCommitted && t.Status != storage.StatusPacked {
			return dst, fmt.Errorf("zrs: transaction %s has status %q, only ' ' and 'p' are replicated: %w", t.Tid, t.Status, ErrUnsupported)
		}
		if size := txnSize(t); size > MaxFrameSize {
			return dst, fmt.Errorf("zrs: transaction %s needs a %d-byte message, more than %d: %w", t.Tid, size, MaxFrameSize, ErrFrameTooLarge)
		}
		dst = append(dst, byte(TypeTxn))
		dst = appendTxnBody(dst, t)
		crc := crc32.Checksum(dst[start:], crc32.MakeTable(crc32.Castagnoli))
		return binary.BigEndian.AppendUint32(dst, crc), nil
	case *Heartbeat:
		dst = append(dst, byte(TypeHeartbeat))
		dst = binary.BigEndian.AppendUint64(dst, uint64(m.LastTid))
		return binary.BigEndian.AppendUint64(dst, uint64(m.UnixNano)), nil
	case *Ack:
		dst = append(dst, byte(TypeAck))
		return binary.BigEndian.AppendUint64(dst, uint64(m.Tid)), nil
	case *Release:
		dst = append(dst, byte(TypeRelease))
		return binary.BigEndian.AppendUint64(dst, uint64(m.Tid)), nil
	case nil:
		return dst, fmt.Errorf("zrs: nil zrs-go/1 message: %w", ErrUnsupported)
	}
	return dst, fmt.Errorf("zrs: cannot encode a %T as a zrs-go/1 message: %w", m, ErrUnsupported)
}

// txnSize returns the encoded size of a Txn message, as an int64 so that
// it cannot overflow.
func txnSize(t *storage.TxnRecord) int64 {
	n := int64(txnFixed) + int64(len(t.User)) + int64(len(t.Description)) + int64(len(t.Extension))
	for i := range t.Records {
		n += txnRecordFixed + int64(len(t.Records[i].Data))
	}
	return n
}

// appendTxnBody appends the canonical encoding of a transaction: the Txn
// message between its type byte and its CRC. Callers have checked that
// every length fits in 32 bits.
func appendTxnBody(dst []byte, t *storage.TxnRecord) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Tid))
	dst = append(dst, t.Status)
	dst = appendBytes32(dst, t.User)
	dst = appendBytes32(dst, t.Description)
	dst = appendBytes32(dst, t.Extension)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(t.Records)))
	for i := range t.Records {
		r := &t.Records[i]
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.Oid))
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.Tid))
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.DataTxn))
		dst = appendBytes32(dst, r.Data)
	}
	return dst
}

func appendBytes32(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// TxnHash returns the SHA-256 of the canonical encoding of a transaction,
// which both ends of a zrs-go/1 connection compute to compare their last
// transactions: the domain string "zrs-go/1 txn\x00" followed by the body
// of the Txn message (tid, status, user, description, extension bytes,
// record count, and per record oid, tid, data_txn and data, with empty
// data counted as None). Storage-local fields (Pos, Prev, Back) are not
// part of it.
func TxnHash(t *storage.TxnRecord) [HashSize]byte {
	h := sha256.New()
	var b [64]byte
	w := func(p []byte) { h.Write(p) }
	w([]byte("zrs-go/1 txn\x00"))
	hdr := binary.BigEndian.AppendUint64(b[:0], uint64(t.Tid))
	hdr = append(hdr, t.Status)
	w(hdr)
	for _, s := range [][]byte{t.User, t.Description, t.Extension} {
		w(binary.BigEndian.AppendUint32(b[:0], uint32(len(s))))
		w(s)
	}
	w(binary.BigEndian.AppendUint32(b[:0], uint32(len(t.Records))))
	for i := range t.Records {
		r := &t.Records[i]
		rb := binary.BigEndian.AppendUint64(b[:0], uint64(r.Oid))
		rb = binary.BigEndian.AppendUint64(rb, uint64(r.Tid))
		rb = binary.BigEndian.AppendUint64(rb, uint64(r.DataTxn))
		rb = binary.BigEndian.AppendUint32(rb, uint32(len(r.Data)))
		w(rb)
		w(r.Data)
	}
	var sum [HashSize]byte
	h.Sum(sum[:0])
	return sum
}

// DecodeGo1 decodes one zrs-go/1 message. It checks every length and count
// against the payload before allocating for it, so a frame cannot make it
// allocate for more than it holds; errors name the offending field and wrap ErrMalformed (ErrChecksum for a
// Txn whose CRC does not match, ErrUnknownProtocol for a Hello of another
// protocol, ErrFrameTooLarge above MaxFrameSize). The byte slices of a
// decoded Txn alias p.
func DecodeGo1(p []byte) (Go1Message, error) {
	if len(p) > MaxFrameSize {
		return nil, fmt.Errorf("zrs: %d-byte message exceeds %d bytes: %w", len(p), MaxFrameSize, ErrFrameTooLarge)
	}
	if len(p) == 0 {
		return nil, fmt.Errorf("zrs: empty zrs-go/1 message: %w", ErrMalformed)
	}
	r := reader{p: p, pos: 1, msg: Go1Type(p[0]).String(), rec: -1}
	var m Go1Message
	switch Go1Type(p[0]) {
	case TypeHello:
		m = r.hello()
	case TypeAnswer:
		m = r.answer()
	case TypeTxn:
		m = r.txn()
	case TypeHeartbeat:
		m = &Heartbeat{LastTid: storage.Tid(r.u64("last tid")), UnixNano: int64(r.u64("time"))}
	case TypeAck:
		m = &Ack{Tid: storage.Tid(r.u64("tid"))}
	case TypeRelease:
		m = &Release{Tid: storage.Tid(r.u64("tid"))}
	default:
		return nil, fmt.Errorf("zrs: unknown zrs-go/1 message type %#02x: %w", p[0], ErrMalformed)
	}
	if r.err == nil && r.pos != len(p) {
		r.fail("end", fmt.Errorf("%d trailing bytes: %w", len(p)-r.pos, ErrMalformed))
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// reader decodes big-endian fields; after the first error every read
// returns zero values and the error is kept.
type reader struct {
	p   []byte
	pos int
	msg string
	rec int // index of the Txn record being read, -1 outside records
	err error
}

func (r *reader) fail(field string, err error) {
	if r.err != nil {
		return
	}
	if r.rec >= 0 {
		r.err = fmt.Errorf("zrs: %s message, record %d, field %s at offset %d: %w", r.msg, r.rec, field, r.pos, err)
		return
	}
	r.err = fmt.Errorf("zrs: %s message, field %s at offset %d: %w", r.msg, field, r.pos, err)
}

func (r *reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.p)-r.pos {
		r.fail(field, fmt.Errorf("needs %d bytes, %d left: %w", n, len(r.p)-r.pos, ErrMalformed))
		return nil
	}
	b := r.p[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	return b
}

func (r *reader) u8(field string) byte {
	if b := r.take(field, 1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if b := r.take(field, 2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if b := r.take(field, 4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if b := r.take(field, 8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// bytes32 reads a 4-byte length and that many bytes.
func (r *reader) bytes32(field string) []byte {
	n := r.u32(field + " length")
	return r.take(field, int(min(n, math.MaxInt32)))
}

func (r *reader) hello() *Hello {
	proto := r.take("protocol", int(r.u8("protocol length")))
	if r.err == nil && string(proto) != ProtocolGo1 {
		r.fail("protocol", fmt.Errorf("%.40q, want %q: %w", proto, ProtocolGo1, ErrUnknownProtocol))
	}
	name := r.take("node name", int(r.u16("node name length")))
	if r.err == nil && (len(name) == 0 || len(name) > MaxNodeName || !utf8.Valid(name)) {
		r.fail("node name", fmt.Errorf("%d bytes, want 1 to %d bytes of UTF-8: %w", len(name), MaxNodeName, ErrMalformed))
	}
	h := &Hello{Node: string(name), Epoch: r.u64("epoch"), LastTid: storage.Tid(r.u64("last tid"))}
	copy(h.LastHash[:], r.take("last hash", HashSize))
	if r.err == nil && h.LastTid == 0 && h.LastHash != ([HashSize]byte{}) {
		r.fail("last hash", fmt.Errorf("non-zero hash with no last tid: %w", ErrMalformed))
	}
	return h
}

func (r *reader) answer() *Answer {
	a := &Answer{Kind: AnswerKind(r.u8("kind"))}
	if r.err == nil && (a.Kind < AnswerStream || a.Kind > AnswerRefused) {
		r.pos--
		r.fail("kind", fmt.Errorf("unknown answer %d: %w", a.Kind, ErrMalformed))
	}
	a.Epoch = r.u64("epoch")
	a.Tid = storage.Tid(r.u64("tid"))
	a.Behind = r.u64("behind")
	reason := r.take("reason", int(r.u16("reason length")))
	if r.err != nil {
		return nil
	}
	if (a.Kind == AnswerRefused) != (len(reason) > 0) || !utf8.Valid(reason) {
		r.fail("reason", fmt.Errorf("%d bytes for a %s answer: only refusals have a reason, of UTF-8: %w", len(reason), a.Kind, ErrMalformed))
	}
	if a.Kind == AnswerRefused && a.Tid != 0 {
		r.fail("tid", fmt.Errorf("refusal with tid %s: %w", a.Tid, ErrMalformed))
	}
	if a.Kind != AnswerStream && a.Behind != 0 {
		r.fail("behind", fmt.Errorf("%s answer with a backlog of %d: %w", a.Kind, a.Behind, ErrMalformed))
	}
	a.Reason = string(reason)
	return a
}

func (r *reader) txn() *Txn {
	if len(r.p) < txnFixed {
		r.fail("header", fmt.Errorf("message of %d bytes is shorter than the %d-byte minimum: %w", len(r.p), txnFixed, ErrMalformed))
		return nil
	}
	// Parse the body first, so that truncation names the field, then
	// check the CRC.
	full := r.p
	r.p = full[:len(full)-crcSize]
	t := &storage.TxnRecord{}
	t.Tid = storage.Tid(r.u64("tid"))
	t.Status = r.u8("status")
	if r.err == nil && t.Status != storage.StatusCommitted && t.Status != storage.StatusPacked {
		r.pos--
		r.fail("status", fmt.Errorf("%q, want ' ' or 'p': %w", t.Status, ErrMalformed))
	}
	t.User = nilIfEmpty(r.bytes32("user"))
	t.Description = nilIfEmpty(r.bytes32("description"))
	t.Extension = nilIfEmpty(r.bytes32("extension"))
	n := r.u32("record count")
	if r.err != nil {
		return nil
	}
	if left := len(r.p) - r.pos; uint64(n)*txnRecordFixed > uint64(left) {
		r.pos -= 4
		r.fail("record count", fmt.Errorf("%d records cannot fit in the %d bytes left: %w", n, left, ErrMalformed))
		return nil
	}
	if n > 0 {
		t.Records = make([]storage.DataRecord, n)
	}
	for i := range t.Records {
		r.rec = i
		d := &t.Records[i]
		d.Oid = storage.Oid(r.u64("oid"))
		d.Tid = storage.Tid(r.u64("tid"))
		d.DataTxn = storage.Tid(r.u64("data_txn"))
		d.Data = nilIfEmpty(r.bytes32("data"))
		if r.err != nil {
			return nil
		}
	}
	r.rec = -1
	if r.pos != len(r.p) {
		r.fail("end", fmt.Errorf("%d bytes between the last record and the CRC: %w", len(r.p)-r.pos, ErrMalformed))
		return nil
	}
	r.p = full
	want := binary.BigEndian.Uint32(full[r.pos:])
	if got := crc32.Checksum(full[:r.pos], crc32.MakeTable(crc32.Castagnoli)); got != want {
		r.fail("crc", fmt.Errorf("CRC-32C %08x, computed %08x: %w", want, got, ErrChecksum))
		return nil
	}
	r.pos = len(full)
	return &Txn{Record: t}
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
