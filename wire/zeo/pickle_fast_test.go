package zeo

import (
	"encoding/hex"
	"reflect"
	"testing"
)

// checkSimpleMatchesOgrek fails if the fast path accepts p but decodes it
// differently from the og-rek path.
func checkSimpleMatchesOgrek(t *testing.T, p []byte) {
	t.Helper()
	fast, ok := decodeSimplePickle(p)
	if !ok {
		return
	}
	slow, err := decodePickleOgrek(p)
	if err != nil {
		t.Fatalf("fast path accepts %x as %s; og-rek refuses it: %v", p, Repr(fast), err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("pickle %x: fast path %#v, og-rek %#v", p, fast, slow)
	}
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
	for _, seed := range simplePickleSeeds(t) {
		checkSimpleMatchesOgrek(t, seed)
		for n := range len(seed) {
			checkSimpleMatchesOgrek(t, seed[:n])
		}
		if len(seed) > 300 {
			continue
		}
		q := make([]byte, len(seed))
		for i := range seed {
			for _, b := range replacements {
				copy(q, seed)
				q[i] = b
				checkSimpleMatchesOgrek(t, q)
			}
		}
	}
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
