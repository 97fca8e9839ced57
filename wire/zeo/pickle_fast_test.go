package zeo

import (
	"encoding/hex"
	"reflect"
	"testing"
)

// checkFastMatches fails if a fast path accepts p but decodes it
// differently from the general path (what names it in messages).
func checkFastMatches(t *testing.T, p []byte, what string, fastPath func([]byte) (any, bool), general func([]byte) (any, error)) {
	t.Helper()
	fast, ok := fastPath(p)
	if !ok {
		return
	}
	slow, err := general(p)
	if err != nil {
		t.Fatalf("fast path accepts %x as %s; %s refuses it: %v", p, Repr(fast), what, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%x: fast path %#v, %s %#v", p, fast, what, slow)
	}
}

// checkSimpleMatchesOgrek fails if the fast path accepts p but decodes it
// differently from the og-rek path.
func checkSimpleMatchesOgrek(t *testing.T, p []byte) {
	t.Helper()
	checkFastMatches(t, p, "og-rek", decodeSimplePickle, decodePickleOgrek)
}

// simplePickleSeeds are the recorded pickle messages and test vectors.
func simplePickleSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, r := range loadSession(t, "session-z5.jsonl") {
		if r.Kind == "message" {
			seeds = append(seeds, r.frame[HeaderSize:])
		}
	}
	for _, v := range pickleDecodeVectors {
		p, _ := hex.DecodeString(v.hex)
		seeds = append(seeds, p)
	}
	for _, v := range pyVectors {
		if p, err := hex.DecodeString(v.pickle); err == nil {
			seeds = append(seeds, p)
		}
	}
	return seeds
}

// The hot messages take the fast path.
func TestSimplePickleAcceptsHotMessages(t *testing.T) {
	req, reply := loadBeforeMessages()
	oid := []byte{0, 0, 0, 0, 0, 0, 0, 7}
	msgs := []Message{
		req, reply,
		NewReply(req.MsgID, Tuple{[]byte("data"), oid, oid}),
		NewCall(7, "vote", int64(3)),
		NewReply(int64(7), List{}),
		NewAsync("storea", oid, oid, []byte("data"), int64(3)),
		NewAsync("tpc_begin", int64(3), []byte("user"), []byte(""), NewDict(), nil, " "),
		NewAsync("invalidateTransaction", oid, List{oid, oid}),
		NewAsync("invalidateTransaction", oid, List{oid}),
		NewReply(int64(1<<40), nil),
		NewReply(int64(-5), Tuple{true, false, "", []byte{}}),
		NewAsync("info", NewDict("length", int64(1000), "size", int64(1<<20))),
		NewAsync("info", NewDict("length", int64(1))),
	}
	many := make(List, 2500) // APPENDS in batches of 1000
	for i := range many {
		many[i] = []byte{0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)}
	}
	msgs = append(msgs, NewAsync("invalidateTransaction", oid, many))
	var c PickleCodec
	for _, m := range msgs {
		p, err := c.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := decodeSimplePickle(p); !ok {
			t.Errorf("%v does not take the fast path", m)
		}
		checkSimpleMatchesOgrek(t, p)
	}
}

// Every recorded message and vector, and every truncation and one-byte
// change of them, decodes alike on both paths.
func TestSimplePickleMatchesOgrek(t *testing.T) {
	replacements := []byte{opStop, opMark, opNone, opTuple, opTuple1, opTuple2, opTuple3, opEmptyTuple,
		opEmptyList, opAppend, opAppends, opList, opEmptyDict, opSetitem, opSetitems, opBinint1, opShortBinbytes, opLong1, 0, 1, 0xff}
	checkMutations(t, simplePickleSeeds(t), replacements, checkSimpleMatchesOgrek)
}

func FuzzSimplePickle(f *testing.F) {
	for _, p := range simplePickleSeeds(f) {
		f.Add(p)
	}
	f.Fuzz(checkSimpleMatchesOgrek)
}

// Decoded messages never alias the payload: the Go client reuses its
// read buffer for the next frame.
func TestDecodeDoesNotAliasPayload(t *testing.T) {
	_, reply := loadBeforeMessages()
	for _, c := range []Codec{PickleCodec{}, MsgpackCodec{}} {
		p, err := c.Encode(reply)
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		want := m.String()
		for i := range p {
			p[i] = 0xee
		}
		if got := m.String(); got != want {
			t.Errorf("%s: decoded message changed with its payload: %s", c.Encoding(), got)
		}
	}
}

// checkSimpleMsgpackMatchesLibrary fails if the msgpack fast path
// accepts p but decodes it differently from the library path.
func checkSimpleMsgpackMatchesLibrary(t *testing.T, p []byte) {
	t.Helper()
	checkFastMatches(t, p, "the msgpack library", decodeSimpleMsgpack, decodeMsgpackLibrary)
}

func simpleMsgpackSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, r := range loadSession(t, "session-m5.jsonl") {
		if r.Kind == "message" {
			seeds = append(seeds, r.frame[HeaderSize:])
		}
	}
	for _, v := range pyVectors {
		if p, err := hex.DecodeString(v.msgpack); err == nil {
			seeds = append(seeds, p)
		}
	}
	for _, s := range []string{"cf8000000000000000", "cf7fffffffffffffff", "d3ffffffffffffffff", "ccff", "cdffff", "ceffffffff",
		"d080", "d18000", "d280000000", "a3616263", "a2c328", "d90161", "da000161", "db0000000161", "c40100", "c5000100", "c600000000",
		"dc0001c0", "dd00000001c3", "9f", "93c0c2"} {
		p, _ := hex.DecodeString(s)
		seeds = append(seeds, p)
	}
	return seeds
}

func TestSimpleMsgpackAcceptsHotMessages(t *testing.T) {
	req, reply := loadBeforeMessages()
	oid := []byte{0, 0, 0, 0, 0, 0, 0, 7}
	var c MsgpackCodec
	for _, m := range []Message{req, reply, NewCall(7, "vote", int64(3)), NewReply(int64(7), List{}),
		NewAsync("storea", oid, oid, []byte("data"), int64(3)), NewAsync("invalidateTransaction", oid, List{oid, oid}),
		NewReply(int64(1<<40), nil), NewReply(int64(-5), Tuple{true, false, "", []byte{}})} {
		p, err := c.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := decodeSimpleMsgpack(p); !ok {
			t.Errorf("%v does not take the fast path", m)
		}
		checkSimpleMsgpackMatchesLibrary(t, p)
	}
}

func TestSimpleMsgpackMatchesLibrary(t *testing.T) {
	replacements := []byte{0x00, 0x7f, 0x80, 0x90, 0x93, 0x9f, 0xa0, 0xa3, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xcc, 0xcf,
		0xd0, 0xd3, 0xd9, 0xdc, 0xdd, 0xde, 0xe0, 0xff}
	checkMutations(t, simpleMsgpackSeeds(t), replacements, checkSimpleMsgpackMatchesLibrary)
}

// checkMutations runs check on each seed, each of its prefixes, and, for
// seeds of up to 300 bytes, every change of one byte to a replacement.
func checkMutations(t *testing.T, seeds [][]byte, replacements []byte, check func(*testing.T, []byte)) {
	t.Helper()
	for _, seed := range seeds {
		check(t, seed)
		for n := range len(seed) {
			check(t, seed[:n])
		}
		if len(seed) > 300 {
			continue
		}
		q := make([]byte, len(seed))
		for i := range seed {
			for _, b := range replacements {
				copy(q, seed)
				q[i] = b
				check(t, q)
			}
		}
	}
}

func FuzzSimpleMsgpack(f *testing.F) {
	for _, p := range simpleMsgpackSeeds(f) {
		f.Add(p)
	}
	f.Fuzz(checkSimpleMsgpackMatchesLibrary)
}
