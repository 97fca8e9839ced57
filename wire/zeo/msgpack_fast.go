package zeo

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// decodeSimpleMsgpack is the msgpack counterpart of decodeSimplePickle:
// it decodes messages made of nil, booleans, integers, str, bin and
// arrays directly, and declines (ok false) anything else (maps, floats,
// extension types, integers beyond int64, invalid or truncated input,
// extra bytes), which the library-based unpacker then decodes or
// refuses. For what it accepts it returns what the unpacker returns;
// FuzzSimpleMsgpack checks that.
func decodeSimpleMsgpack(p []byte) (v any, ok bool) {
	d := simpleMsgpack{p: p}
	v, ok = d.value(0)
	if !ok || d.i != len(p) {
		return nil, false
	}
	return v, true
}

type simpleMsgpack struct {
	p     []byte
	i     int
	arena []byte // shared by the message's byte strings
}

// take returns the next n bytes.
func (d *simpleMsgpack) take(n uint64) ([]byte, bool) {
	if n > uint64(len(d.p)-d.i) {
		return nil, false
	}
	b := d.p[d.i : d.i+int(n)]
	d.i += int(n)
	return b, true
}

// length reads a big-endian length of size bytes.
func (d *simpleMsgpack) length(size int) (uint64, bool) {
	b, ok := d.take(uint64(size))
	if !ok {
		return 0, false
	}
	switch size {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), true
	case 4:
		return uint64(binary.BigEndian.Uint32(b)), true
	}
	return binary.BigEndian.Uint64(b), true
}

func (d *simpleMsgpack) value(depth int) (any, bool) {
	if depth > MaxDepth || d.i >= len(d.p) {
		return nil, false
	}
	c := d.p[d.i]
	d.i++
	switch {
	case c <= 0x7f: // positive fixint
		return int64(c), true
	case c >= 0xe0: // negative fixint
		return int64(int8(c)), true
	case c >= 0xa0 && c <= 0xbf: // fixstr
		return d.str(uint64(c & 0x1f))
	case c >= 0x90 && c <= 0x9f: // fixarray
		return d.array(uint64(c&0x0f), depth)
	}
	switch c {
	case 0xc0:
		return nil, true
	case 0xc2:
		return false, true
	case 0xc3:
		return true, true
	case 0xcc, 0xcd, 0xce, 0xcf: // uint8..uint64
		n, ok := d.length(1 << (c - 0xcc))
		if !ok || n > math.MaxInt64 {
			return nil, false
		}
		return int64(n), true
	case 0xd0:
		n, ok := d.length(1)
		return int64(int8(n)), ok
	case 0xd1:
		n, ok := d.length(2)
		return int64(int16(n)), ok
	case 0xd2:
		n, ok := d.length(4)
		return int64(int32(n)), ok
	case 0xd3:
		n, ok := d.length(8)
		return int64(n), ok
	case 0xd9, 0xda, 0xdb: // str8..str32
		n, ok := d.length(1 << (c - 0xd9))
		if !ok {
			return nil, false
		}
		return d.str(n)
	case 0xc4, 0xc5, 0xc6: // bin8..bin32
		n, ok := d.length(1 << (c - 0xc4))
		if !ok {
			return nil, false
		}
		b, ok := d.take(n)
		if !ok {
			return nil, false
		}
		if d.arena == nil {
			d.arena = make([]byte, 0, len(d.p)-d.i+len(b))
		}
		start := len(d.arena)
		d.arena = append(d.arena, b...)
		return d.arena[start:len(d.arena):len(d.arena)], true
	case 0xdc, 0xdd: // array16, array32
		n, ok := d.length(2 << (c - 0xdc))
		if !ok {
			return nil, false
		}
		return d.array(n, depth)
	}
	return nil, false
}

func (d *simpleMsgpack) str(n uint64) (any, bool) {
	b, ok := d.take(n)
	if !ok || !utf8.Valid(b) {
		return nil, false
	}
	return str(b), true
}

func (d *simpleMsgpack) array(n uint64, depth int) (any, bool) {
	if n > uint64(len(d.p)-d.i) { // every element takes at least one byte
		return nil, false
	}
	t := make(Tuple, n)
	for i := range t {
		var ok bool
		if t[i], ok = d.value(depth + 1); !ok {
			return nil, false
		}
	}
	return t, true
}
