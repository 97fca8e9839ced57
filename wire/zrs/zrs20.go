package zrs

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"hash"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// Protocol identifiers sent by a secondary as its first message.
const (
	// ProtocolZRS20 is the zc.zrs protocol without blobs.
	ProtocolZRS20 = "zrs2.0"
	// ProtocolZRS21 is the zc.zrs protocol with blob records; this
	// package recognises it only to refuse it with ErrBlobsNotSupported.
	ProtocolZRS21 = "zrs2.1"
)

// MaxSecondaryMessage is the largest message a zc.zrs primary accepts
// from a secondary (the 8-byte start tid); larger ones make it drop the
// connection with "message too large". Read the secondary's side of a
// zrs2.0 connection with zeo.NewFrameReader(conn, MaxSecondaryMessage).
const MaxSecondaryMessage = 8

// ChecksumSize is the size of the MD5 digest carried by a 'C' message.
const ChecksumSize = md5.Size

// Kind is the type letter of a zrs2.0 message from primary to secondary.
type Kind byte

// The zrs2.0 message kinds.
const (
	KindBegin    Kind = 'T' // start of a transaction: TxnBegin
	KindStore    Kind = 'S' // one data record, followed by a raw data message: StoreRecord
	KindChecksum Kind = 'C' // end of a transaction: TxnChecksum
)

// String returns the letter.
func (k Kind) String() string { return string(rune(k)) }

// Message is a decoded zrs2.0 pickled message: *TxnBegin, *StoreRecord or
// *TxnChecksum. (The raw data message following a StoreRecord is not a
// pickle and has no Message type.)
type Message interface {
	Kind() Kind
}

// TxnBegin is ('T', (tid, status, user, description, extension)): the
// metadata of a transaction, which the secondary passes to tpc_begin.
type TxnBegin struct {
	Tid storage.Tid
	// Status is ' ' (committed) or 'p' (packed); zc.zrs never sends
	// others.
	Status byte
	// User and Description are the raw bytes of the transaction record.
	User, Description []byte
	// Extension is the extension dict (never nil when decoded; a nil
	// *zeo.Dict encodes as an empty dict).
	Extension *zeo.Dict
}

// Kind returns KindBegin.
func (*TxnBegin) Kind() Kind { return KindBegin }

// StoreRecord is ('S', (oid, tid, version, data_txn)): one data record,
// whose data travels in the next message.
type StoreRecord struct {
	Oid storage.Oid
	Tid storage.Tid
	// DataTxn is the transaction an undo-style backpointer record refers
	// to, 0 for None.
	DataTxn storage.Tid
}

// Kind returns KindStore.
func (*StoreRecord) Kind() Kind { return KindStore }

// TxnChecksum is ('C', (md5 digest,)): the end of a transaction, carrying
// the MD5 chain's digest of everything sent before it. Primaries before
// zc.zrs 2.2.3 sent ('C', ()): Missing is then true and Digest zero.
type TxnChecksum struct {
	Digest  [ChecksumSize]byte
	Missing bool
}

// Kind returns KindChecksum.
func (*TxnChecksum) Kind() Kind { return KindChecksum }

// AppendHandshake appends the two frames a zrs2.0 secondary sends on
// connecting: the protocol id and its last transaction id (0 when empty).
func AppendHandshake(dst []byte, start storage.Tid) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(ProtocolZRS20)))
	dst = append(dst, ProtocolZRS20...)
	dst = binary.BigEndian.AppendUint32(dst, 8)
	return binary.BigEndian.AppendUint64(dst, uint64(start))
}

// KeepAliveFrame returns the empty frame a zrs2.0 secondary may send after
// its handshake as a keep-alive.
func KeepAliveFrame() []byte { return make([]byte, 4) }

// ParseProtocol checks a secondary's first message. It returns nil for
// zrs2.0, an error wrapping ErrBlobsNotSupported for zrs2.1 and one
// wrapping ErrUnknownProtocol otherwise. (Use IdentifyHandshake on a port
// that serves both zrs2.0 and zrs-go/1.)
func ParseProtocol(p []byte) error {
	switch string(p) {
	case ProtocolZRS20:
		return nil
	case ProtocolZRS21:
		return fmt.Errorf("zrs: secondary asked for protocol %q: %w", p, ErrBlobsNotSupported)
	}
	return fmt.Errorf("zrs: secondary asked for protocol %.40q: %w", p, ErrUnknownProtocol)
}

// ParseStartTid decodes a secondary's second message, its last transaction
// id: exactly 8 bytes.
func ParseStartTid(p []byte) (storage.Tid, error) {
	if len(p) != 8 {
		return 0, fmt.Errorf("zrs: start tid is %d bytes, want 8: %w", len(p), ErrMalformed)
	}
	return storage.Tid(binary.BigEndian.Uint64(p)), nil
}

// CheckKeepAlive checks a message a zrs2.0 secondary sent after its
// handshake: only empty messages (keep-alives) are allowed; anything else
// is what zc.zrs calls "Too many messages" and wraps ErrUnexpectedMessage.
func CheckKeepAlive(p []byte) error {
	if len(p) != 0 {
		return fmt.Errorf("zrs: secondary sent a %d-byte message after its handshake (too many messages): %w", len(p), ErrUnexpectedMessage)
	}
	return nil
}

// Chain is the MD5 checksum chain of a zrs2.0 stream: seeded with the
// 8-byte start tid of the handshake and fed every primary→secondary
// payload after it, in order (without length prefixes). A 'C' message
// carries the digest of everything before it and is then fed itself.
// A Chain must not be used by more than one goroutine at a time.
type Chain struct {
	h hash.Hash
}

// NewChain returns a chain seeded with the start tid.
func NewChain(start storage.Tid) *Chain {
	c := &Chain{h: md5.New()}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(start))
	c.h.Write(b[:])
	return c
}

// Feed adds one payload to the chain.
func (c *Chain) Feed(p []byte) {
	c.h.Write(p)
}

// Sum returns the digest of everything fed so far, without changing the
// chain.
func (c *Chain) Sum() [ChecksumSize]byte {
	var d [ChecksumSize]byte
	c.h.Sum(d[:0])
	return d
}

// AppendMessage appends the pickle zc.zrs writes for m (protocol 1, fast
// mode, as CPython 3's pickler writes it), byte for byte.
func AppendMessage(dst []byte, m Message) ([]byte, error) {
	switch m := m.(type) {
	case *TxnBegin:
		if m.Status != storage.StatusCommitted && m.Status != storage.StatusPacked {
			return dst, fmt.Errorf("zrs: transaction %s has status %q, only ' ' and 'p' are replicated: %w", m.Tid, m.Status, ErrUnsupported)
		}
		dst = append(dst, "(X\x01\x00\x00\x00T("...)
		dst = appendPickleBytes(dst, m.Tid.Bytes())
		dst = append(dst, opBinunicode, 1, 0, 0, 0)
		dst = append(dst, string(rune(m.Status))...)
		dst = appendPickleBytes(dst, m.User)
		dst = appendPickleBytes(dst, m.Description)
		var err error
		ext := m.Extension
		if ext == nil {
			ext = new(zeo.Dict)
		}
		if dst, err = appendPickleDict(dst, ext, 2); err != nil {
			return dst, fmt.Errorf("zrs: transaction %s: extension: %w", m.Tid, err)
		}
		return append(dst, opTuple, opTuple, opStop), nil
	case *StoreRecord:
		dst = append(dst, "(X\x01\x00\x00\x00S("...)
		dst = appendPickleBytes(dst, m.Oid.Bytes())
		dst = appendPickleBytes(dst, m.Tid.Bytes())
		dst = append(dst, opBinunicode, 0, 0, 0, 0) // version ''
		if m.DataTxn == 0 {
			dst = append(dst, opNone)
		} else {
			dst = appendPickleBytes(dst, m.DataTxn.Bytes())
		}
		return append(dst, opTuple, opTuple, opStop), nil
	case *TxnChecksum:
		dst = append(dst, "(X\x01\x00\x00\x00C"...)
		if m.Missing {
			return append(dst, opEmptyTuple, opTuple, opStop), nil
		}
		dst = append(dst, opMark)
		dst = appendPickleBytes(dst, m.Digest[:])
		return append(dst, opTuple, opTuple, opStop), nil
	case nil:
		return dst, fmt.Errorf("zrs: nil message: %w", ErrUnsupported)
	}
	return dst, fmt.Errorf("zrs: cannot encode a %T as a zrs2.0 message: %w", m, ErrUnsupported)
}

// DecodeMessage decodes one pickled zrs2.0 message from a primary: 'T',
// 'S' or 'C'. It accepts what stock zc.zrs primaries write (Python 3:
// BINUNICODE strs and _codecs.encode bytes; Python 2: BINSTRING strs; old
// primaries' ('C', ())) and rejects anything else: a 'B' blob record
// wraps ErrBlobsNotSupported, other message types and fields of the wrong
// type or size ErrMalformed, globals other than _codecs.encode and bytes
// ErrNotAllowed. It does not keep p.
func DecodeMessage(p []byte) (Message, error) {
	v, err := decodePickle(p)
	if err != nil {
		return nil, fmt.Errorf("zrs: decoding message: %w", err)
	}
	t, ok := v.(zeo.Tuple)
	if !ok || len(t) != 2 {
		return nil, fmt.Errorf("zrs: message is a %s, not a (type, data) pair: %w", describe(v), ErrMalformed)
	}
	kind, ok := asText(t[0])
	if !ok {
		return nil, fmt.Errorf("zrs: message type is a %s, not a str: %w", typeName(t[0]), ErrMalformed)
	}
	data, ok := t[1].(zeo.Tuple)
	if !ok {
		return nil, fmt.Errorf("zrs: %.8q message data is a %s, not a tuple: %w", kind, typeName(t[1]), ErrMalformed)
	}
	switch kind {
	case "T":
		return decodeBegin(data)
	case "S":
		return decodeStore(data)
	case "C":
		return decodeChecksum(data)
	case "B":
		return nil, fmt.Errorf("zrs: 'B' blob record: %w", ErrBlobsNotSupported)
	}
	return nil, fmt.Errorf("zrs: invalid message type %.8q: %w", kind, ErrMalformed)
}

func decodeBegin(data zeo.Tuple) (*TxnBegin, error) {
	if len(data) != 5 {
		return nil, fmt.Errorf("zrs: 'T' message has %d fields, want 5 (tid, status, user, description, extension): %w", len(data), ErrMalformed)
	}
	tid, err := asTid(data[0], "'T' tid")
	if err != nil {
		return nil, err
	}
	status, ok := asText(data[1])
	if !ok || len(status) != 1 || (status[0] != storage.StatusCommitted && status[0] != storage.StatusPacked) {
		return nil, fmt.Errorf("zrs: 'T' status is %s, want ' ' or 'p': %w", describe(data[1]), ErrMalformed)
	}
	user, ok := asBytes(data[2])
	if !ok {
		return nil, fmt.Errorf("zrs: 'T' user is a %s, not bytes: %w", typeName(data[2]), ErrMalformed)
	}
	desc, ok := asBytes(data[3])
	if !ok {
		return nil, fmt.Errorf("zrs: 'T' description is a %s, not bytes: %w", typeName(data[3]), ErrMalformed)
	}
	ext, ok := data[4].(*zeo.Dict)
	if !ok {
		return nil, fmt.Errorf("zrs: 'T' extension is a %s, not a dict: %w", typeName(data[4]), ErrMalformed)
	}
	normalizeValue(ext)
	return &TxnBegin{Tid: tid, Status: status[0], User: user, Description: desc, Extension: ext}, nil
}

func decodeStore(data zeo.Tuple) (*StoreRecord, error) {
	if len(data) != 4 {
		return nil, fmt.Errorf("zrs: 'S' message has %d fields, want 4 (oid, tid, version, data_txn): %w", len(data), ErrMalformed)
	}
	oid, err := asTid(data[0], "'S' oid")
	if err != nil {
		return nil, err
	}
	tid, err := asTid(data[1], "'S' tid")
	if err != nil {
		return nil, err
	}
	if v, ok := asText(data[2]); !ok || v != "" {
		return nil, fmt.Errorf("zrs: 'S' version is %s, want '' (ZODB versions are not supported): %w", describe(data[2]), ErrMalformed)
	}
	var dataTxn storage.Tid
	if data[3] != nil {
		if dataTxn, err = asTid(data[3], "'S' data_txn"); err != nil {
			return nil, err
		}
		if dataTxn == 0 {
			return nil, fmt.Errorf("zrs: 'S' data_txn is the zero tid: %w", ErrMalformed)
		}
	}
	return &StoreRecord{Oid: storage.Oid(oid), Tid: tid, DataTxn: dataTxn}, nil
}

func decodeChecksum(data zeo.Tuple) (*TxnChecksum, error) {
	switch len(data) {
	case 0:
		return &TxnChecksum{Missing: true}, nil
	case 1:
		b, ok := asBytes(data[0])
		if !ok || len(b) != ChecksumSize {
			return nil, fmt.Errorf("zrs: 'C' digest is %s, want %d bytes: %w", describe(data[0]), ChecksumSize, ErrMalformed)
		}
		c := &TxnChecksum{}
		copy(c.Digest[:], b)
		return c, nil
	}
	return nil, fmt.Errorf("zrs: 'C' message has %d fields, want 1 (digest): %w", len(data), ErrMalformed)
}

// asText accepts a str, or a Python 2 str holding ASCII.
func asText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case legacyStr:
		for i := 0; i < len(v); i++ {
			if v[i] >= 0x80 {
				return "", false
			}
		}
		return string(v), true
	}
	return "", false
}

// asBytes accepts bytes, or a Python 2 str.
func asBytes(v any) ([]byte, bool) {
	switch v := v.(type) {
	case []byte:
		return v, true
	case legacyStr:
		return []byte(v), true
	}
	return nil, false
}

// asTid accepts 8 bytes.
func asTid(v any, field string) (storage.Tid, error) {
	b, ok := asBytes(v)
	if !ok || len(b) != 8 {
		return 0, fmt.Errorf("zrs: %s is %s, want 8 bytes: %w", field, describe(v), ErrMalformed)
	}
	return storage.Tid(binary.BigEndian.Uint64(b)), nil
}

// describe names a value's type, and its length for strings, for error
// messages.
func describe(v any) string {
	switch v := v.(type) {
	case []byte:
		return fmt.Sprintf("%d bytes", len(v))
	case string:
		return fmt.Sprintf("the %d-byte str %.16q", len(v), v)
	case legacyStr:
		return fmt.Sprintf("the %d-byte Python 2 str %.16q", len(v), string(v))
	case zeo.Tuple:
		return fmt.Sprintf("a %d-tuple", len(v))
	}
	return "a " + typeName(v)
}

// TxnEncoder turns storage transactions into the frames a zc.zrs primary
// sends, keeping the stream's MD5 chain. It must not be used by more than
// one goroutine at a time.
type TxnEncoder struct {
	chain *Chain
	buf   []byte
}

// NewTxnEncoder returns an encoder for a stream whose handshake named the
// start tid.
func NewTxnEncoder(start storage.Tid) *TxnEncoder {
	return &TxnEncoder{chain: NewChain(start)}
}

// Chain returns the encoder's checksum chain.
func (e *TxnEncoder) Chain() *Chain { return e.chain }

// Encode calls emit with each payload zc.zrs sends for txn, in order:
// the 'T' pickle; for each record the 'S' pickle and the record's data
// (empty for None); then the 'C' pickle. The chain is fed each payload
// before emit sees it. A payload passed to emit is valid only until emit
// returns. An error from emit is returned unchanged and leaves the chain
// in the middle of the transaction: the stream is then unusable.
//
// Transactions with a status other than ' ' and 'p' (zc.zrs skips
// undone ones and waits for in-progress ones) and extensions that do not
// decode as a pickled dict are refused before anything is emitted.
func (e *TxnEncoder) Encode(txn *storage.TxnRecord, emit func(payload []byte) error) error {
	ext, err := zeo.DecodeExtension(txn.Extension)
	if err != nil {
		return fmt.Errorf("zrs: transaction %s: %w", txn.Tid, err)
	}
	b, err := AppendMessage(e.buf[:0], &TxnBegin{
		Tid: txn.Tid, Status: txn.Status, User: txn.User, Description: txn.Description, Extension: ext,
	})
	if err != nil {
		return err
	}
	if err := e.emit(b, emit); err != nil {
		return err
	}
	for i := range txn.Records {
		r := &txn.Records[i]
		b, _ = AppendMessage(b[:0], &StoreRecord{Oid: r.Oid, Tid: r.Tid, DataTxn: r.DataTxn})
		if err := e.emit(b, emit); err != nil {
			return err
		}
		data := r.Data
		if data == nil {
			data = []byte{}
		}
		if err := e.emit(data, emit); err != nil {
			return err
		}
	}
	b, _ = AppendMessage(b[:0], &TxnChecksum{Digest: e.chain.Sum()})
	err = e.emit(b, emit)
	e.buf = b[:0]
	return err
}

func (e *TxnEncoder) emit(p []byte, emit func([]byte) error) error {
	e.chain.Feed(p)
	return emit(p)
}

// AppendFrames appends the frames of txn (length-prefixed payloads, see
// Encode) to dst.
func (e *TxnEncoder) AppendFrames(dst []byte, txn *storage.TxnRecord) ([]byte, error) {
	err := e.Encode(txn, func(p []byte) error {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(p)))
		dst = append(dst, p...)
		return nil
	})
	return dst, err
}

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	// AllowMissingChecksum accepts ('C', ()) from primaries older than
	// zc.zrs 2.2.3 (zc.zrs's check_checksums=False). Otherwise such a
	// message fails with ErrChecksum.
	AllowMissingChecksum bool
}

// Receiver decodes the primary→secondary side of a zrs2.0 stream after the
// handshake, one payload at a time, and yields each transaction once its
// 'C' checksum has verified. The caller discards a partial transaction
// (InTxn) when the connection is lost and starts a new Receiver on the
// next connection. After an error the stream is out of sync: every later
// Feed returns the same error. A Receiver must not be used by more than
// one goroutine at a time.
type Receiver struct {
	opts    ReceiverOptions
	chain   *Chain
	txn     *storage.TxnRecord // transaction being received, nil between transactions
	pending *StoreRecord       // 'S' whose data message is next
	err     error
}

// NewReceiver returns a receiver for a stream whose handshake sent start.
func NewReceiver(start storage.Tid, opts ReceiverOptions) *Receiver {
	return &Receiver{opts: opts, chain: NewChain(start)}
}

// InTxn reports whether a transaction has begun and not yet completed.
func (r *Receiver) InTxn() bool { return r.txn != nil }

// Feed consumes the next payload. It returns the transaction completed by
// a verified 'C' message, and nil otherwise. The transaction's Extension
// is the extension dict pickled as ZODB stores it (zeo.EncodeExtension:
// empty for an empty dict); record Data is nil for an empty data message.
// Data payloads are kept, not copied: the caller must not modify p after
// passing it.
func (r *Receiver) Feed(p []byte) (*storage.TxnRecord, error) {
	if r.err != nil {
		return nil, r.err
	}
	txn, err := r.feed(p)
	if err != nil {
		r.err = err
		r.txn, r.pending = nil, nil
	}
	return txn, err
}

func (r *Receiver) feed(p []byte) (*storage.TxnRecord, error) {
	if r.pending != nil {
		s := r.pending
		r.pending = nil
		r.chain.Feed(p)
		rec := storage.DataRecord{Oid: s.Oid, Tid: s.Tid, DataTxn: s.DataTxn}
		if len(p) > 0 {
			rec.Data = p
		}
		r.txn.Records = append(r.txn.Records, rec)
		return nil, nil
	}
	m, err := DecodeMessage(p)
	if err != nil {
		return nil, err
	}
	switch m := m.(type) {
	case *TxnBegin:
		if r.txn != nil {
			return nil, fmt.Errorf("zrs: 'T' for %s inside transaction %s: %w", m.Tid, r.txn.Tid, ErrUnexpectedMessage)
		}
		ext, err := zeo.EncodeExtension(m.Extension)
		if err != nil {
			return nil, fmt.Errorf("zrs: 'T' for %s: extension: %w", m.Tid, err)
		}
		r.chain.Feed(p)
		r.txn = &storage.TxnRecord{
			TxnInfo: storage.TxnInfo{Tid: m.Tid, User: m.User, Description: m.Description, Extension: ext},
			Status:  m.Status,
		}
		return nil, nil
	case *StoreRecord:
		if r.txn == nil {
			return nil, fmt.Errorf("zrs: 'S' for oid %s outside a transaction: %w", m.Oid, ErrUnexpectedMessage)
		}
		r.chain.Feed(p)
		r.pending = m
		return nil, nil
	case *TxnChecksum:
		if r.txn == nil {
			return nil, fmt.Errorf("zrs: 'C' outside a transaction: %w", ErrUnexpectedMessage)
		}
		if m.Missing {
			if !r.opts.AllowMissingChecksum {
				return nil, fmt.Errorf("zrs: transaction %s ends without a checksum (primary older than zc.zrs 2.2.3?): %w", r.txn.Tid, ErrChecksum)
			}
		} else if want := r.chain.Sum(); !bytes.Equal(m.Digest[:], want[:]) {
			return nil, fmt.Errorf("zrs: transaction %s: checksum %x, computed %x: %w", r.txn.Tid, m.Digest, want, ErrChecksum)
		}
		r.chain.Feed(p)
		txn := r.txn
		r.txn = nil
		return txn, nil
	}
	return nil, fmt.Errorf("zrs: unexpected message %T: %w", m, ErrMalformed)
}
