package zeo

import (
	"bytes"
	"fmt"
)

// Encoding is a ZEO 5 message encoding, named by the letter the server
// announces in the handshake (spec B.2).
type Encoding byte

const (
	// Pickle is encoding "Z": protocol-3 pickles (spec B.4).
	Pickle Encoding = 'Z'
	// Msgpack is encoding "M": msgpack with bin/str types (spec B.5).
	Msgpack Encoding = 'M'
)

const (
	// ProtocolVersion is the protocol version this package speaks.
	ProtocolVersion = "5"

	// RuokProbe is the first message of a monitoring probe (ZEO.nagios); the
	// server answers it with its announcement and one JSON status frame,
	// then closes the connection.
	RuokProbe = "ruok"
)

// String returns "Z" or "M", or a description of an invalid encoding.
func (e Encoding) String() string {
	if e.valid() {
		return string(rune(e))
	}
	return fmt.Sprintf("Encoding(%#x)", byte(e))
}

func (e Encoding) valid() bool { return e == Pickle || e == Msgpack }

// Announcement returns the server's first message for this encoding, "Z5"
// or "M5", or nil for an invalid encoding.
func (e Encoding) Announcement() []byte {
	if !e.valid() {
		return nil
	}
	return []byte{byte(e), ProtocolVersion[0]}
}

// Codec returns the codec of this encoding, or nil for an invalid encoding.
func (e Encoding) Codec() Codec {
	switch e {
	case Pickle:
		return PickleCodec{}
	case Msgpack:
		return MsgpackCodec{}
	}
	return nil
}

// ParseClientHandshake parses the client's reply to the announcement, the
// first frame it sends. The reply is the encoding letter followed by "5";
// the server must then use that letter's encoding, whatever it announced
// (that is what the Python server does). The reply "ruok" is a monitoring
// probe: ruok is true and enc is zero. Anything else yields an error
// wrapping ErrBadHandshake, after which the server closes the connection.
func ParseClientHandshake(p []byte) (enc Encoding, ruok bool, err error) {
	if string(p) == RuokProbe {
		return 0, true, nil
	}
	if len(p) == 2 && p[1] == ProtocolVersion[0] {
		if e := Encoding(p[0]); e.valid() {
			return e, false, nil
		}
	}
	return 0, false, fmt.Errorf("zeo: client handshake %s: %w", shortRepr(p), ErrBadHandshake)
}

// ParseAnnouncement parses a server's protocol announcement as a ZEO 5
// client does: the first byte names the encoding and the client settles on
// min(version, "5"), which must be "5". The client then replies with
// enc.Announcement().
func ParseAnnouncement(p []byte) (Encoding, error) {
	if len(p) >= 2 {
		if e := Encoding(p[0]); e.valid() && bytes.Compare(p[1:], []byte(ProtocolVersion)) >= 0 {
			return e, nil
		}
	}
	return 0, fmt.Errorf("zeo: server announcement %s: %w", shortRepr(p), ErrBadHandshake)
}

// shortRepr renders at most the first 64 bytes of p for error messages.
func shortRepr(p []byte) string {
	if len(p) > 64 {
		return fmt.Sprintf("%s... (%d bytes)", appendBytesRepr(nil, p[:64]), len(p))
	}
	return string(appendBytesRepr(nil, p))
}
