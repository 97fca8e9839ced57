package zeo

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func oid(n byte) []byte { return []byte{0, 0, 0, 0, 0, 0, 0, n} }

// Messages built with the constructors encode exactly like the Python
// frames of spec B.4/B.5 and of the recordings (payloads without prefix).
func TestConstructorsMatchPython(t *testing.T) {
	tid := func(s string) []byte { return mustHex(s) }
	for _, tc := range []struct {
		name            string
		m               Message
		pickle, msgpack string // expected payloads, or
		seq             int    // the recorded frame to compare with
	}{
		{"spec register call", NewCall(1, "register", "1", false),
			"80 03 28 4b 01 89 58 08 00 00 00 72 65 67 69 73 74 65 72 58 01 00 00 00 31 89 86 74 2e",
			"94 01 c2 a8 7265676973746572 92 a1 31 c2", 0},
		{"register reply (seq 4)", NewReply(int64(1), oid(0)),
			"8003284b014b0058060000002e7265706c7943080000000000000000742e",
			"940100a62e7265706c79c4080000000000000000", 0},
		{"POSKeyError (seq 16)", NewErrorReply(Tuple{oid(0), oid(1)}, POSKeyError(oid(0))),
			"8003284308000000000000000043080000000000000001864b0258060000002e7265706c79581d0000005a4f44422e504f53457863657074696f6e2e504f534b65794572726f72430800000000000000008586742e",
			"9492c4080000000000000000c408000000000000000102a62e7265706c7992bd5a4f44422e504f53457863657074696f6e2e504f534b65794572726f7291c4080000000000000000", 0},
		{"ReadOnlyError (seq 240)", NewErrorReply(int64(3), ReadOnlyError()),
			"8003284b034b0258060000002e7265706c79581f0000005a4f44422e504f53457863657074696f6e2e526561644f6e6c794572726f722986742e",
			"940302a62e7265706c7992bf5a4f44422e504f53457863657074696f6e2e526561644f6e6c794572726f7290", 0},
		{"ReadConflictError", NewErrorReply(int64(8), ReadConflictError(oid(2), tid("03f6eac01ddddddd"), tid("03f6eac00ccccccc"))),
			"", "", 91},
		{"vote with conflict", NewReply(int64(3), List{VoteConflict(oid(1), tid("03f6eac011111111"), tid("03f6eac008888888"), []byte("\x80\x03cBTrees.Length\nLength\nq\x00.\x80\x03K\n."))}),
			"", "", 65},
		{"invalidateTransaction (seq 24)", NewAsync("invalidateTransaction", tid("03f6eac004444444"), List{oid(0)}),
			"8003284b00885815000000696e76616c69646174655472616e73616374696f6e430803f6eac0044444445d430800000000000000006186742e",
			"9400c3b5696e76616c69646174655472616e73616374696f6e92c40803f6eac00444444491c4080000000000000000", 0},
		{"info (seq 22)", NewAsync("info", NewDict("length", int64(1), "size", int64(166))),
			"8003284b00885804000000696e666f7d2858060000006c656e6774684b01580400000073697a654ba67585742e",
			"9400c3a4696e666f9182a66c656e67746801a473697a65cca6", 0},
		{"heartbeat (seq 245)", NewHeartbeat(),
			"8003284affffffff4b0058060000002e7265706c794e742e",
			"94ff00a62e7265706c79c0", 0},
	} {
		for _, c := range []Codec{PickleCodec{}, MsgpackCodec{}} {
			var wantB []byte
			switch {
			case tc.seq != 0:
				wantB = recordedPayload(t, c.Encoding(), tc.seq)
			case c.Encoding() == Pickle:
				wantB = mustHex(tc.pickle)
			default:
				wantB = mustHex(tc.msgpack)
			}
			got, err := c.Encode(tc.m)
			if err != nil {
				t.Errorf("%s/%v: %v", tc.name, c.Encoding(), err)
				continue
			}
			if hex.EncodeToString(got) != hex.EncodeToString(wantB) {
				t.Errorf("%s/%v:\n got %x\nwant %x", tc.name, c.Encoding(), got, wantB)
			}
		}
	}
}

// recordedPayload returns the payload of frame seq of a recording.
func recordedPayload(t *testing.T, enc Encoding, seq int) []byte {
	name := map[Encoding]string{Pickle: "session-z5.jsonl", Msgpack: "session-m5.jsonl"}[enc]
	for _, r := range loadSession(t, name) {
		if r.Seq == seq {
			return r.frame[HeaderSize:]
		}
	}
	t.Fatalf("%s has no seq %d", name, seq)
	return nil
}

func TestMessagePredicates(t *testing.T) {
	lb := Message{MsgID: Tuple{oid(0), oid(1)}, Flag: false, Method: "loadBefore", Args: Tuple{oid(0), oid(1)}}
	cases := []struct {
		m                         Message
		reply, hb, async, isError bool
	}{
		{NewCall(1, "ping"), false, false, false, false},
		{NewAsync("storea"), false, false, true, false},
		{Message{MsgID: int64(0), Flag: int64(1), Method: "tpc_begin"}, false, false, true, false},
		{lb, false, false, false, false},
		{NewReply(int64(1), nil), true, false, false, false},
		{NewErrorReply(int64(1), ReadOnlyError()), true, false, false, true},
		{Message{MsgID: int64(1), Flag: true, Method: ReplyMethod}, true, false, false, true},
		{NewHeartbeat(), true, true, false, false},
	}
	for _, c := range cases {
		if c.m.IsReply() != c.reply || c.m.IsHeartbeat() != c.hb || c.m.IsAsync() != c.async || c.m.IsError() != c.isError {
			t.Errorf("%v: reply=%v heartbeat=%v async=%v error=%v", c.m, c.m.IsReply(), c.m.IsHeartbeat(), c.m.IsAsync(), c.m.IsError())
		}
	}
	if got := NewCall(1, "ping").String(); got != "(1, False, 'ping', ())" {
		t.Errorf("String: %s", got)
	}
	exc, ok := ExceptionFromMessage(NewErrorReply(int64(5), POSKeyError(oid(7))))
	if !ok || exc.Class != ClassPOSKeyError || Repr(exc.Args) != Repr(Tuple{oid(7)}) {
		t.Errorf("ExceptionFromMessage: %v %v", exc, ok)
	}
	if got := exc.Error(); got != `ZODB.POSException.POSKeyError(b'\x00\x00\x00\x00\x00\x00\x00\x07')` {
		t.Errorf("Error(): %s", got)
	}
	if _, ok := ExceptionFromMessage(NewReply(int64(5), nil)); ok {
		t.Error("ExceptionFromMessage accepted a normal reply")
	}
}

func TestDecodeMessageShape(t *testing.T) {
	for _, c := range []Codec{PickleCodec{}, MsgpackCodec{}} {
		enc := func(v any) []byte {
			var b []byte
			var err error
			switch c := c.(type) {
			case PickleCodec:
				b, err = c.EncodeValue(v)
			case MsgpackCodec:
				b, err = c.EncodeValue(v)
			}
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		for _, v := range []any{
			nil, int64(1), Tuple{int64(1), false, "m"},
			Tuple{int64(1), false, "m", Tuple{}, nil},
			Tuple{int64(1), false, []byte("m"), Tuple{}},
		} {
			if _, err := c.Decode(enc(v)); !errors.Is(err, ErrMalformed) {
				t.Errorf("%v: %s: got %v, want ErrMalformed", c.Encoding(), Repr(v), err)
			}
		}
		if c.Encoding() == Pickle {
			if _, err := c.Decode(enc(List{int64(1), false, "m", Tuple{}})); !errors.Is(err, ErrMalformed) {
				t.Errorf("list message: got %v, want ErrMalformed", err)
			}
		}
	}
}
