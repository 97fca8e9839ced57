package zeo

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// seedPayloads adds the recorded message payloads of one encoding.
func seedPayloads(f *testing.F, file string) {
	for _, r := range loadSession(f, file) {
		if r.Kind == "message" {
			f.Add(r.frame[HeaderSize:])
		}
	}
}

// checkRoundTrip verifies that a decoded value re-encodes, and that the
// re-encoding decodes to the same value.
func checkRoundTrip(t *testing.T, v any, enc func(any) ([]byte, error), dec func([]byte) (any, error)) {
	p, err := enc(v)
	if err != nil {
		t.Fatalf("decoded value %s does not re-encode: %v", Repr(v), err)
	}
	w, err := dec(p)
	if err != nil {
		t.Fatalf("re-encoding %x of %s does not decode: %v", p, Repr(v), err)
	}
	if Repr(w) != Repr(v) {
		t.Fatalf("round trip changed %s into %s", Repr(v), Repr(w))
	}
}

func FuzzPickleDecode(f *testing.F) {
	seedPayloads(f, "session-z5.jsonl")
	for _, v := range pickleDecodeVectors {
		p, _ := hex.DecodeString(v.hex)
		f.Add(p)
	}
	for _, v := range pyVectors {
		if p, err := hex.DecodeString(v.pickle); err == nil {
			f.Add(p)
		}
	}
	for _, v := range extensionVectors {
		p, _ := hex.DecodeString(v.hex)
		f.Add(p)
	}
	var c PickleCodec
	f.Fuzz(func(t *testing.T, p []byte) {
		v, err := c.DecodeValue(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		checkRoundTrip(t, v, c.EncodeValue, c.DecodeValue)
		if d, ok := v.(*Dict); ok { // the memoizing (extension) pickler too
			checkRoundTrip(t, d, EncodeExtension, func(p []byte) (any, error) { return DecodeExtension(p) })
		}
		if m, err := c.Decode(p); err == nil {
			q, err := c.Encode(m)
			if err != nil {
				t.Fatalf("message %v does not re-encode: %v", m, err)
			}
			if m2, err := c.Decode(q); err != nil || m2.String() != m.String() {
				t.Fatalf("message round trip: %v -> %v, %v", m, m2, err)
			}
		}
	})
}

func FuzzMsgpackDecode(f *testing.F) {
	seedPayloads(f, "session-m5.jsonl")
	for _, v := range pyVectors {
		if p, err := hex.DecodeString(v.msgpack); err == nil {
			f.Add(p)
		}
	}
	for _, s := range []string{"ddffffffff", "c6ffffffff00", "d6ff00000000", "81c001"} {
		p, _ := hex.DecodeString(s)
		f.Add(p)
	}
	var c MsgpackCodec
	f.Fuzz(func(t *testing.T, p []byte) {
		v, err := c.DecodeValue(p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		checkRoundTrip(t, v, c.EncodeValue, c.DecodeValue)
		if m, err := c.Decode(p); err == nil {
			q, err := c.Encode(m)
			if err != nil {
				t.Fatalf("message %v does not re-encode: %v", m, err)
			}
			// Only float32 and non-minimal integer forms are not reproduced.
			if m2, err := c.Decode(q); err != nil || m2.String() != m.String() {
				t.Fatalf("message round trip: %v -> %v, %v", m, m2, err)
			}
		}
	})
}

func FuzzFrameReader(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x02Z5\x00\x00\x00\x00"), uint16(0))
	f.Add([]byte("\x00\x00\x00\x05ab"), uint16(100))
	f.Add([]byte("\xff\xff\xff\xffab"), uint16(0))
	f.Add([]byte("\x00\x01\x00\x00"+strings.Repeat("x", 300)), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		fr := NewFrameReader(bytes.NewReader(data), int(max))
		consumed := 0
		for {
			p, err := fr.ReadFrame()
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				if err == io.EOF && consumed != len(data) {
					t.Fatalf("io.EOF after %d of %d bytes", consumed, len(data))
				}
				return
			}
			if len(p) > fr.MaxFrameSize() {
				t.Fatalf("frame of %d bytes above the limit %d", len(p), fr.MaxFrameSize())
			}
			if !bytes.Equal(p, data[consumed+HeaderSize:consumed+HeaderSize+len(p)]) {
				t.Fatal("payload differs from input")
			}
			consumed += HeaderSize + len(p)
		}
	})
}
