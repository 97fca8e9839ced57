package zrs

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/zrs-go/zrs/storage"
)

// fuzzSeedsZRS20 returns payloads of a captured stream as seeds (falling
// back to synthetic ones if the capture is missing, so that fuzzing still
// runs; the fixture tests report the missing capture).
func fuzzSeedsZRS20(f *testing.F) [][]byte {
	var seeds [][]byte
	if _, err := os.Stat(filepath.Join(zrsFixtures, "stream.jsonl")); err == nil {
		for _, fr := range loadCapture(f, "stream.jsonl") {
			if fr.Dir == "s2c" && fr.Kind != "raw" {
				seeds = append(seeds, fr.payload)
			}
		}
	}
	enc := NewTxnEncoder(0)
	enc.Encode(testTxn(0x03f58e0000000010, 3), func(p []byte) error {
		seeds = append(seeds, bytes.Clone(p))
		return nil
	})
	return seeds
}

// FuzzZRS20Decode checks that decoding arbitrary payloads never panics,
// that whatever decodes re-encodes to a payload decoding to the same
// message and encoding identically, and that the receiver survives any
// sequence of frames.
func FuzzZRS20Decode(f *testing.F) {
	for _, s := range fuzzSeedsZRS20(f) {
		f.Add(s)
	}
	f.Add([]byte("(U\x01T(U\x08\x03\xf5\x8e\x00\x04DDDU\x01 U\x05aliceU\x02d\xff}(U\x02ipU\x09127.0.0.1ltt."))
	f.Add([]byte("(X\x01\x00\x00\x00C)t."))
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := DecodeMessage(p)
		if err == nil {
			enc, err := AppendMessage(nil, m)
			if err != nil {
				t.Fatalf("decoded %s does not encode: %v", messageRepr(m), err)
			}
			m2, err := DecodeMessage(enc)
			if err != nil {
				t.Fatalf("re-encoded %s does not decode: %v", messageRepr(m), err)
			}
			if messageRepr(m2) != messageRepr(m) {
				t.Fatalf("round trip changed %s into %s", messageRepr(m), messageRepr(m2))
			}
			enc2, err := AppendMessage(nil, m2)
			if err != nil || !bytes.Equal(enc, enc2) {
				t.Fatalf("encoding is not stable (%v)", err)
			}
		}
		// The input as a sequence of frames for a receiver.
		rcv := NewReceiver(0, ReceiverOptions{AllowMissingChecksum: len(p)%2 == 0})
		for len(p) >= 4 {
			n := int(binary.BigEndian.Uint32(p) % 512)
			p = p[4:]
			n = min(n, len(p))
			txn, err := rcv.Feed(p[:n:n])
			if err != nil {
				return
			}
			if txn != nil {
				// A verified transaction is a valid zrs-go/1 Txn.
				if _, err := AppendGo1(nil, &Txn{Record: txn}); err != nil {
					t.Fatalf("received transaction does not encode: %v", err)
				}
			}
			p = p[n:]
		}
	})
}

// FuzzOurDecode checks that decoding arbitrary zrs-go/1 messages never
// panics and that whatever decodes re-encodes to exactly the same bytes
// (the encoding is canonical).
func FuzzOurDecode(f *testing.F) {
	for _, m := range []Go1Message{
		&Hello{Node: "node-a", Epoch: 7, LastTid: 0x03f58e0026666666, LastHash: sampleHash(1)},
		&Answer{Kind: AnswerStream, Epoch: 3, Tid: 5},
		&Answer{Kind: AnswerRefused, Epoch: 3, Reason: "stale epoch"},
		&Txn{Record: testTxn(0x03f58e0000000010, 3)},
		&Txn{Record: &storage.TxnRecord{TxnInfo: storage.TxnInfo{Tid: 1}, Status: 'p'}},
		&Heartbeat{LastTid: 9, UnixNano: 1704067200123456789},
		&Ack{Tid: 9},
		&Release{Tid: 9},
	} {
		b, err := AppendGo1(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := DecodeGo1(p)
		if err != nil {
			return
		}
		b, err := AppendGo1(nil, m)
		if err != nil {
			t.Fatalf("decoded %T does not encode: %v", m, err)
		}
		if !bytes.Equal(b, p) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", b, p)
		}
	})
}
