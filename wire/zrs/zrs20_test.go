package zrs

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

func TestHandshakeHelpers(t *testing.T) {
	hs := AppendHandshake(nil, 0x03f58e0026666666)
	want := []byte("\x00\x00\x00\x06zrs2.0\x00\x00\x00\x08\x03\xf5\x8e\x00&fff")
	if !bytes.Equal(hs, want) {
		t.Fatalf("AppendHandshake = %q", hs)
	}
	// The zeo frame reader reads both, and the empty keep-alive frame.
	fr := zeo.NewFrameReader(bytes.NewReader(append(hs, KeepAliveFrame()...)), MaxSecondaryMessage)
	p1, _ := fr.ReadFrame()
	p2, _ := fr.ReadFrame()
	p3, err := fr.ReadFrame()
	if err != nil || len(p3) != 0 {
		t.Fatalf("keep-alive frame: %q, %v", p3, err)
	}
	if err := ParseProtocol(p1); err != nil {
		t.Fatal(err)
	}
	if tid, err := ParseStartTid(p2); err != nil || tid != 0x03f58e0026666666 {
		t.Fatalf("ParseStartTid = %s, %v", tid, err)
	}
	if err := CheckKeepAlive(p3); err != nil {
		t.Fatal(err)
	}
	if err := CheckKeepAlive([]byte{0}); !errors.Is(err, ErrUnexpectedMessage) {
		t.Fatalf("CheckKeepAlive(non-empty) = %v", err)
	}
	for p, want := range map[string]error{
		"zrs2.1": ErrBlobsNotSupported,
		"zrs2.2": ErrUnknownProtocol,
		"":       ErrUnknownProtocol,
	} {
		if err := ParseProtocol([]byte(p)); !errors.Is(err, want) {
			t.Errorf("ParseProtocol(%q) = %v, want %v", p, err, want)
		}
		if _, err := IdentifyHandshake([]byte(p)); !errors.Is(err, want) {
			t.Errorf("IdentifyHandshake(%q) = %v, want %v", p, err, want)
		}
	}
	for _, n := range []int{0, 7, 9} {
		if _, err := ParseStartTid(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseStartTid(%d bytes) = %v", n, err)
		}
	}
}

func TestChain(t *testing.T) {
	c := NewChain(0x0102030405060708)
	c.Feed([]byte("abc"))
	want := md5.Sum([]byte("\x01\x02\x03\x04\x05\x06\x07\x08abc"))
	if c.Sum() != want || c.Sum() != want {
		t.Fatalf("Sum = %x, want %x", c.Sum(), want)
	}
}

// testTxn returns a transaction with a few records of every kind.
func testTxn(tid storage.Tid, nrec int) *storage.TxnRecord {
	ext, err := zeo.EncodeExtension(zeo.NewDict("user_id", "x", "n", int64(len("x"))))
	if err != nil {
		panic(err)
	}
	txn := &storage.TxnRecord{
		TxnInfo: storage.TxnInfo{Tid: tid, User: []byte("alice"), Description: []byte("d\xffé"), Extension: ext},
		Status:  ' ',
	}
	for i := range nrec {
		r := storage.DataRecord{Oid: storage.Oid(i), Tid: tid, Data: bytes.Repeat([]byte{byte(i)}, 100+i)}
		switch i % 4 {
		case 1:
			r.DataTxn = tid - 1 // undo backpointer with data
		case 2:
			r.Data = nil // deletion
		}
		txn.Records = append(txn.Records, r)
	}
	return txn
}

// payloads returns the payloads the encoder emits for txns.
func payloads(t *testing.T, start storage.Tid, txns ...*storage.TxnRecord) [][]byte {
	t.Helper()
	enc := NewTxnEncoder(start)
	var out [][]byte
	for _, txn := range txns {
		if err := enc.Encode(txn, func(p []byte) error {
			out = append(out, bytes.Clone(p))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestReceiverRoundTrip(t *testing.T) {
	a, b := testTxn(0x03f58e0000000010, 7), testTxn(0x03f58e0000000020, 0)
	b.Status = 'p'
	ps := payloads(t, 5, a, b)
	rcv := NewReceiver(5, ReceiverOptions{})
	var got []*storage.TxnRecord
	for i, p := range ps {
		txn, err := rcv.Feed(p)
		if err != nil {
			t.Fatalf("payload %d: %v", i, err)
		}
		if (txn != nil) != (i == 1+2*7 || i == len(ps)-1) {
			t.Fatalf("payload %d: transaction %v", i, txn)
		}
		if txn != nil {
			got = append(got, txn)
		}
	}
	for i, want := range []*storage.TxnRecord{a, b} {
		if err := sameTxn(got[i], want); err != nil {
			t.Errorf("transaction %d: %v", i, err)
		}
	}
}

func TestReceiverErrors(t *testing.T) {
	txn := testTxn(0x03f58e0000000010, 2)
	ps := payloads(t, 0, txn)
	checksum := ps[len(ps)-1]
	begin := ps[0]
	store := ps[1]

	run := func(opts ReceiverOptions, start storage.Tid, feed ...[]byte) error {
		rcv := NewReceiver(start, opts)
		var err error
		for _, p := range feed {
			if _, err = rcv.Feed(p); err != nil {
				// The receiver stays failed.
				if _, again := rcv.Feed(ps[0]); again != err {
					t.Errorf("second Feed after failure returned %v, want %v", again, err)
				}
				if rcv.InTxn() {
					t.Errorf("receiver still in a transaction after failing")
				}
				return err
			}
		}
		return err
	}
	corrupt := bytes.Clone(ps[2])
	corrupt[0] ^= 1
	oldC, _ := AppendMessage(nil, &TxnChecksum{Missing: true})
	blob := []byte("(X\x01\x00\x00\x00B(tt.")
	for _, c := range []struct {
		name  string
		opts  ReceiverOptions
		start storage.Tid
		feed  [][]byte
		want  error
	}{
		{"wrong start tid", ReceiverOptions{}, 1, ps, ErrChecksum},
		{"corrupted data", ReceiverOptions{}, 0, append([][]byte{ps[0], ps[1], corrupt}, ps[3:]...), ErrChecksum},
		{"S before T", ReceiverOptions{}, 0, [][]byte{store}, ErrUnexpectedMessage},
		{"C before T", ReceiverOptions{}, 0, [][]byte{checksum}, ErrUnexpectedMessage},
		{"T inside T", ReceiverOptions{}, 0, [][]byte{begin, begin}, ErrUnexpectedMessage},
		{"garbage", ReceiverOptions{}, 0, [][]byte{[]byte("\xffhello")}, ErrMalformed},
		{"blob record", ReceiverOptions{}, 0, [][]byte{begin, blob}, ErrBlobsNotSupported},
		{"old checksum refused", ReceiverOptions{}, 0, [][]byte{begin, oldC}, ErrChecksum},
	} {
		if err := run(c.opts, c.start, c.feed...); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// An old primary's ('C', ()) is accepted when asked for.
	rcv := NewReceiver(0, ReceiverOptions{AllowMissingChecksum: true})
	if _, err := rcv.Feed(begin); err != nil {
		t.Fatal(err)
	}
	got, err := rcv.Feed(oldC)
	if err != nil || got == nil || got.Tid != txn.Tid {
		t.Fatalf("old checksum: %v, %v", got, err)
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	tid := "c_codecs\nencode\n(X\x08\x00\x00\x00\x03\xc3\xb5\xc2\x8e\x00\x00\x00\x00X\x06\x00\x00\x00latin1tR"
	short := "c_codecs\nencode\n(X\x01\x00\x00\x00aX\x06\x00\x00\x00latin1tR"
	empty := "c__builtin__\nbytes\n)R"
	for _, c := range []struct {
		name string
		p    string
		want error
	}{
		{"not a tuple", "N.", ErrMalformed},
		{"3-tuple", "(X\x01\x00\x00\x00TNNt.", ErrMalformed},
		{"type not str", "(K\x01)t.", ErrMalformed},
		{"type bytes", "(" + short + ")t.", ErrMalformed},
		{"data not tuple", "(X\x01\x00\x00\x00T]t.", ErrMalformed},
		{"unknown type", "(X\x01\x00\x00\x00Z)t.", ErrMalformed},
		{"T short", "(X\x01\x00\x00\x00T(" + tid + "tt.", ErrMalformed},
		{"T tid short", "(X\x01\x00\x00\x00T(" + short + "X\x01\x00\x00\x00 " + empty + empty + "}tt.", ErrMalformed},
		{"T status u", "(X\x01\x00\x00\x00T(" + tid + "X\x01\x00\x00\x00u" + empty + empty + "}tt.", ErrMalformed},
		{"T status bytes", "(X\x01\x00\x00\x00T(" + tid + "c__builtin__\nbytes\n)R" + empty + empty + "}tt.", ErrMalformed},
		{"T user str", "(X\x01\x00\x00\x00T(" + tid + "X\x01\x00\x00\x00 X\x00\x00\x00\x00" + empty + "}tt.", ErrMalformed},
		{"T description None", "(X\x01\x00\x00\x00T(" + tid + "X\x01\x00\x00\x00 " + empty + "N}tt.", ErrMalformed},
		{"T extension list", "(X\x01\x00\x00\x00T(" + tid + "X\x01\x00\x00\x00 " + empty + empty + "]tt.", ErrMalformed},
		{"S version", "(X\x01\x00\x00\x00S(" + tid + tid + "X\x01\x00\x00\x00vNtt.", ErrMalformed},
		{"S data_txn str", "(X\x01\x00\x00\x00S(" + tid + tid + "X\x00\x00\x00\x00X\x00\x00\x00\x00tt.", ErrMalformed},
		{"S zero data_txn", "(X\x01\x00\x00\x00S(" + tid + tid + "X\x00\x00\x00\x00U\x08\x00\x00\x00\x00\x00\x00\x00\x00tt.", ErrMalformed},
		{"S 3 fields", "(X\x01\x00\x00\x00S(" + tid + tid + "X\x00\x00\x00\x00tt.", ErrMalformed},
		{"C short digest", "(X\x01\x00\x00\x00C(" + short + "tt.", ErrMalformed},
		{"C two fields", "(X\x01\x00\x00\x00C(NNtt.", ErrMalformed},
		{"B", "(X\x01\x00\x00\x00B)t.", ErrBlobsNotSupported},
		{"global", "(X\x01\x00\x00\x00C(cos\nsystem\ntt.", ErrNotAllowed},
	} {
		if _, err := DecodeMessage([]byte(c.p)); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

// A Python 2 zc.zrs primary writes strs as SHORT_BINSTRING.
func TestDecodePython2Messages(t *testing.T) {
	tid := "U\x08\x03\xf5\x8e\x00\x04DDD"
	m, err := DecodeMessage([]byte("(U\x01T(" + tid + "U\x01 U\x05aliceU\x02d\xff}(U\x02ipU\x09127.0.0.1U\x03rawU\x01\xffU\x01l](U\x01aX\x01\x00\x00\x00beutt."))
	if err != nil {
		t.Fatal(err)
	}
	b := m.(*TxnBegin)
	if b.Tid != 0x03f58e0004444444 || b.Status != ' ' || string(b.User) != "alice" || string(b.Description) != "d\xff" {
		t.Fatalf("decoded %+v", b)
	}
	want := zeo.NewDict("ip", "127.0.0.1", "raw", []byte{0xff}, "l", zeo.List{"a", "b"})
	if !zeo.Equal(b.Extension, want) {
		t.Fatalf("extension %s", zeo.Repr(b.Extension))
	}
	m, err = DecodeMessage([]byte("(U\x01S(U\x08\x00\x00\x00\x00\x00\x00\x00\x01" + tid + "U\x00" + tid + "tt."))
	if err != nil {
		t.Fatal(err)
	}
	if s := m.(*StoreRecord); s.Oid != 1 || s.Tid != 0x03f58e0004444444 || s.DataTxn != s.Tid {
		t.Fatalf("decoded %+v", s)
	}
}

func TestEncodeRejects(t *testing.T) {
	txn := testTxn(1, 1)
	txn.Status = 'u'
	enc := NewTxnEncoder(0)
	if err := enc.Encode(txn, func([]byte) error { t.Fatal("emitted"); return nil }); !errors.Is(err, ErrUnsupported) {
		t.Errorf("status u: %v", err)
	}
	txn.Status = ' '
	txn.Extension = []byte("not a pickle")
	if err := enc.Encode(txn, func([]byte) error { t.Fatal("emitted"); return nil }); err == nil {
		t.Errorf("bad extension accepted")
	}
	if _, err := AppendMessage(nil, nil); !errors.Is(err, ErrUnsupported) {
		t.Errorf("nil message: %v", err)
	}
	// An emit error is returned unchanged.
	boom := errors.New("boom")
	if err := NewTxnEncoder(0).Encode(testTxn(1, 1), func([]byte) error { return boom }); err != boom {
		t.Errorf("emit error: %v", err)
	}
}

// The frames of an encoded transaction carry their payload lengths.
func TestAppendFrames(t *testing.T) {
	txn := testTxn(0x03f58e0000000010, 3)
	b, err := NewTxnEncoder(0).AppendFrames([]byte("x"), txn)
	if err != nil {
		t.Fatal(err)
	}
	ps := payloads(t, 0, txn)
	b = b[1:]
	for i, p := range ps {
		n := binary.BigEndian.Uint32(b)
		if int(n) != len(p) || !bytes.Equal(b[4:4+n], p) {
			t.Fatalf("frame %d differs", i)
		}
		b = b[4+n:]
	}
	if len(b) != 0 {
		t.Fatalf("%d extra bytes", len(b))
	}
}
