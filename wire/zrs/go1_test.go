package zrs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/zrs-go/zrs/storage"
)

func sampleHash(b byte) (h [HashSize]byte) {
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

func TestGo1RoundTrip(t *testing.T) {
	emptyTxn := &storage.TxnRecord{TxnInfo: storage.TxnInfo{Tid: 0x03f58e004ccccccc}, Status: ' '}
	for _, c := range []struct {
		name string
		m    Go1Message
		hex  string // expected encoding, when given
	}{
		{"hello", &Hello{Node: "node-a", Epoch: 7, LastTid: 0x03f58e0026666666, LastHash: sampleHash(1)}, ""},
		{"hello empty storage", &Hello{Node: "n", Epoch: 0}, "01087a72732d676f2f3100016e" + strings.Repeat("00", 16+32)},
		{"hello unicode name", &Hello{Node: strings.Repeat("é", MaxNodeName/2), Epoch: 1 << 63}, ""},
		{"answer stream", &Answer{Kind: AnswerStream, Epoch: 3, Tid: 0x03f58e005ddddddd, Behind: 0x102}, "0201000000000000000303f58e005ddddddd00000000000001020000"},
		{"answer ahead", &Answer{Kind: AnswerAhead, Epoch: 3, Tid: 42}, ""},
		{"answer diverged", &Answer{Kind: AnswerDiverged, Epoch: 3, Tid: 0x03f58e002aaaaaaa}, ""},
		{"answer diverged nothing in common", &Answer{Kind: AnswerDiverged, Epoch: 3}, ""},
		{"answer refused", &Answer{Kind: AnswerRefused, Epoch: 9, Reason: "stale epoch 3 < 9"}, ""},
		{"txn", &Txn{Record: testTxn(0x03f58e0000000010, 9)}, ""},
		{"txn packed", &Txn{Record: func() *storage.TxnRecord { r := testTxn(0x03f58e0000000010, 1); r.Status = 'p'; return r }()}, ""},
		{"txn empty", &Txn{Record: emptyTxn}, "0303f58e004ccccccc2000000000000000000000000000000000" + "45cb5e3d"},
		{"heartbeat", &Heartbeat{LastTid: 0x03f58e0000000010, UnixNano: 1704067200123456789}, "0403f58e000000001017a6101708c0cd15"},
		{"heartbeat negative time", &Heartbeat{UnixNano: -1}, ""},
		{"ack", &Ack{Tid: 0x03f58e0000000010}, "0503f58e0000000010"},
		{"release", &Release{Tid: 0x03f58e0000000010}, "0603f58e0000000010"},
		{"release nothing yet", &Release{}, "060000000000000000"},
	} {
		b, err := AppendGo1([]byte("prefix"), c.m)
		if err != nil {
			t.Errorf("%s: encode: %v", c.name, err)
			continue
		}
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Errorf("%s: dst prefix lost", c.name)
		}
		b = b[len("prefix"):]
		if c.hex != "" && hex.EncodeToString(b) != c.hex {
			t.Errorf("%s: encoding\n got %x\nwant %s", c.name, b, c.hex)
		}
		got, err := DecodeGo1(b)
		if err != nil {
			t.Errorf("%s: decode: %v", c.name, err)
			continue
		}
		if got.Go1Type() != c.m.Go1Type() || Go1Type(b[0]) != c.m.Go1Type() {
			t.Errorf("%s: type %s, want %s", c.name, got.Go1Type(), c.m.Go1Type())
		}
		if tx, ok := c.m.(*Txn); ok {
			if err := sameTxn(got.(*Txn).Record, tx.Record); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		} else if !reflect.DeepEqual(got, c.m) {
			t.Errorf("%s: decoded %+v, want %+v", c.name, got, c.m)
		}
		// Every strict prefix is rejected, naming a field, without panicking.
		for n := range len(b) {
			if _, err := DecodeGo1(b[:n]); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrChecksum) {
				t.Errorf("%s: %d-byte prefix: %v", c.name, n, err)
			}
		}
		// So is a trailing byte.
		if _, err := DecodeGo1(append(bytes.Clone(b), 0)); err == nil {
			t.Errorf("%s: trailing byte accepted", c.name)
		}
	}
}

func TestGo1Corruption(t *testing.T) {
	b, err := AppendGo1(nil, &Txn{Record: testTxn(0x03f58e0000000010, 3)})
	if err != nil {
		t.Fatal(err)
	}
	// Flipping any bit of a Txn is detected: as a checksum mismatch, or as
	// a malformed field when it hits a length or the status (or as another
	// message type when it hits the type byte).
	for i := range b {
		for bit := range 8 {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			_, err := DecodeGo1(c)
			if err == nil {
				t.Fatalf("bit %d of byte %d flipped: accepted", bit, i)
			}
			if i > 0 && !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("byte %d: %v", i, err)
			}
		}
	}
	// A data byte flip is a checksum error naming the CRC.
	c := bytes.Clone(b)
	c[len(c)-10] ^= 0xff
	if _, err := DecodeGo1(c); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "crc") {
		t.Fatalf("data corruption: %v", err)
	}
}

func TestGo1DecodeErrors(t *testing.T) {
	hello := func(proto, name string) []byte {
		b := []byte{byte(TypeHello), byte(len(proto))}
		b = append(b, proto...)
		b = append(b, 0, byte(len(name)))
		b = append(b, name...)
		return append(b, make([]byte, 16+HashSize)...)
	}
	withHash := hello(ProtocolGo1, "n")
	withHash[len(withHash)-1] = 1 // hash without a last tid
	for _, c := range []struct {
		name  string
		p     []byte
		want  error
		field string
	}{
		{"empty", nil, ErrMalformed, ""},
		{"unknown type", []byte{0x7a}, ErrMalformed, ""},
		{"type after release", []byte{0x07, 0, 0, 0, 0, 0, 0, 0, 0}, ErrMalformed, ""},
		{"other protocol", hello("zrs-go/2", "n"), ErrUnknownProtocol, "protocol"},
		{"empty name", hello(ProtocolGo1, ""), ErrMalformed, "node name"},
		{"bad utf-8 name", hello(ProtocolGo1, "\xff"), ErrMalformed, "node name"},
		{"hash without tid", withHash, ErrMalformed, "last hash"},
		{"answer kind 0", []byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ErrMalformed, "kind"},
		{"answer kind 5", []byte{2, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ErrMalformed, "kind"},
		{"refusal without reason", []byte{2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ErrMalformed, "reason"},
		{"ahead with a backlog", []byte{2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}, ErrMalformed, "behind"},
		{"stream with reason", []byte{2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'x'}, ErrMalformed, "reason"},
		{"refusal with tid", []byte{2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'x'}, ErrMalformed, "tid"},
		{"ack short", []byte{5, 1}, ErrMalformed, "tid"},
		{"release short", []byte{6, 0, 0, 0, 0, 0, 0, 1}, ErrMalformed, "tid"},
		{"release long", []byte{6, 0, 0, 0, 0, 0, 0, 0, 1, 0}, ErrMalformed, "end"},
		{"heartbeat long", make([]byte, 1+16+1), ErrMalformed, "end"},
	} {
		if c.name == "heartbeat long" {
			c.p[0] = byte(TypeHeartbeat)
		}
		_, err := DecodeGo1(c.p)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
			continue
		}
		if c.field != "" && !strings.Contains(err.Error(), "field "+c.field) {
			t.Errorf("%s: error %q does not name field %q", c.name, err, c.field)
		}
	}

	// Txn bodies with a valid CRC but bad structure.
	txnMsg := func(body []byte) []byte {
		b := append([]byte{byte(TypeTxn)}, body...)
		return append(b, make([]byte, 4)...) // CRC checked last: structure errors come first
	}
	u32 := func(n uint32) []byte { return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} }
	tidStatus := append(make([]byte, 8), ' ')
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, c := range []struct {
		name  string
		p     []byte
		field string
	}{
		{"status u", txnMsg(cat(make([]byte, 8), []byte{'u'}, u32(0), u32(0), u32(0), u32(0))), "status"},
		{"huge user length", txnMsg(cat(tidStatus, u32(0xffffffff), u32(0), u32(0), u32(0))), "user"},
		{"huge record count", txnMsg(cat(tidStatus, u32(0), u32(0), u32(0), u32(0xffffffff))), "record count"},
		{"record count too high", txnMsg(cat(tidStatus, u32(0), u32(0), u32(0), u32(1), make([]byte, 27))), "record count"},
		{"record data too long", txnMsg(cat(tidStatus, u32(0), u32(0), u32(0), u32(1), make([]byte, 24), u32(5), []byte("abcd"))), "data"},
		{"bytes after records", txnMsg(cat(tidStatus, u32(0), u32(0), u32(0), u32(0), []byte{0})), "end"},
	} {
		_, err := DecodeGo1(c.p)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "field "+c.field) {
			t.Errorf("%s: got %v, want ErrMalformed naming field %q", c.name, err, c.field)
		}
	}
}

func TestGo1EncodeErrors(t *testing.T) {
	big := make([]byte, 1<<20)
	huge := &storage.TxnRecord{TxnInfo: storage.TxnInfo{Tid: 1}, Status: ' '}
	for i := 0; i <= MaxFrameSize>>20; i++ {
		huge.Records = append(huge.Records, storage.DataRecord{Oid: storage.Oid(i), Tid: 1, Data: big})
	}
	undone := testTxn(1, 1)
	undone.Status = 'u'
	for _, c := range []struct {
		name string
		m    Go1Message
		want error
	}{
		{"nil", nil, ErrUnsupported},
		{"hello no name", &Hello{}, ErrUnsupported},
		{"hello long name", &Hello{Node: strings.Repeat("x", MaxNodeName+1)}, ErrUnsupported},
		{"hello hash without tid", &Hello{Node: "n", LastHash: sampleHash(1)}, ErrUnsupported},
		{"answer kind 0", &Answer{}, ErrUnsupported},
		{"refusal without reason", &Answer{Kind: AnswerRefused}, ErrUnsupported},
		{"stream with reason", &Answer{Kind: AnswerStream, Reason: "x"}, ErrUnsupported},
		{"refusal with tid", &Answer{Kind: AnswerRefused, Reason: "x", Tid: 1}, ErrUnsupported},
		{"ahead with a backlog", &Answer{Kind: AnswerAhead, Behind: 1}, ErrUnsupported},
		{"txn nil", &Txn{}, ErrUnsupported},
		{"txn undone", &Txn{Record: undone}, ErrUnsupported},
		{"txn too large", &Txn{Record: huge}, ErrFrameTooLarge},
	} {
		if _, err := AppendGo1(nil, c.m); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestIdentifyHandshakeGo1(t *testing.T) {
	b, err := AppendGo1(nil, &Hello{Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := IdentifyHandshake(b); err != nil || p != ProtocolGo1 {
		t.Fatalf("IdentifyHandshake(Hello) = %q, %v", p, err)
	}
	if p, err := IdentifyHandshake([]byte(ProtocolZRS20)); err != nil || p != ProtocolZRS20 {
		t.Fatalf("IdentifyHandshake(zrs2.0) = %q, %v", p, err)
	}
}

func TestTxnHash(t *testing.T) {
	base := testTxn(0x03f58e0000000010, 4)
	h := TxnHash(base)
	if h == ([HashSize]byte{}) {
		t.Fatal("zero hash")
	}
	// Storage-local fields and nil-versus-empty do not matter.
	same := testTxn(0x03f58e0000000010, 4)
	same.Pos = 1234
	same.Records[0].Pos, same.Records[0].Prev, same.Records[0].Back = 1, 2, 3
	same.Records[2].Data = []byte{}
	same.User = append([]byte{}, same.User...)
	if TxnHash(same) != h {
		t.Fatal("hash depends on storage-local fields")
	}
	// Every replicated field does.
	for name, mutate := range map[string]func(*storage.TxnRecord){
		"tid":    func(r *storage.TxnRecord) { r.Tid++ },
		"status": func(r *storage.TxnRecord) { r.Status = 'p' },
		"user":   func(r *storage.TxnRecord) { r.User = []byte("bob") },
		"user/desc shift": func(r *storage.TxnRecord) {
			r.User, r.Description = append(r.User, r.Description[0]), r.Description[1:]
		},
		"description":     func(r *storage.TxnRecord) { r.Description = nil },
		"extension":       func(r *storage.TxnRecord) { r.Extension = nil },
		"record oid":      func(r *storage.TxnRecord) { r.Records[1].Oid = 99 },
		"record tid":      func(r *storage.TxnRecord) { r.Records[1].Tid-- },
		"record data_txn": func(r *storage.TxnRecord) { r.Records[1].DataTxn = 0 },
		"record data":     func(r *storage.TxnRecord) { r.Records[1].Data[0] ^= 1 },
		"record dropped":  func(r *storage.TxnRecord) { r.Records = r.Records[:3] },
		"records swapped": func(r *storage.TxnRecord) { r.Records[0], r.Records[3] = r.Records[3], r.Records[0] },
	} {
		m := testTxn(0x03f58e0000000010, 4)
		mutate(m)
		if TxnHash(m) == h {
			t.Errorf("%s: hash unchanged", name)
		}
	}
	// The hash is the SHA-256 of the domain string and the Txn body, so a
	// decoded Txn hashes like the original.
	b, _ := AppendGo1(nil, &Txn{Record: base})
	m, err := DecodeGo1(b)
	if err != nil || TxnHash(m.(*Txn).Record) != h {
		t.Fatalf("decoded txn hash differs (%v)", err)
	}
}

func TestGo1TypeNames(t *testing.T) {
	for typ, want := range map[Go1Type]string{
		TypeHello: "Hello", TypeAnswer: "Answer", TypeTxn: "Txn", TypeHeartbeat: "Heartbeat",
		TypeAck: "Ack", TypeRelease: "Release", 0x07: "Go1Type(0x07)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("Go1Type(%#02x).String() = %q, want %q", byte(typ), got, want)
		}
	}
}
