package zeo

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// MsgpackCodec is the "M" encoding: each message is
// msgpack.packb((msgid, flag, method, args), use_bin_type=True), decoded by
// the Python peer with raw=False, use_list=False (spec B.5).
//
// Encoding writes every integer in its smallest msgpack form, str as str
// (fixstr/str8/16/32), bytes as bin, tuples and lists as arrays, dicts as
// maps in their order, floats as float64, exactly as msgpack-python does.
// Decoding mirrors msgpack-python's unpackb: arrays become Tuple, maps become
// Dict and must have str or bytes keys (strict_map_key), str must be valid
// UTF-8, and extension types are refused.
type MsgpackCodec struct{}

var _ Codec = MsgpackCodec{}

// Encoding returns Msgpack.
func (MsgpackCodec) Encoding() Encoding { return Msgpack }

// Encode packs (msgid, flag, method, args).
func (MsgpackCodec) Encode(m Message) ([]byte, error) {
	return packTop(nil, Tuple{m.MsgID, m.Flag, m.Method, m.Args}, 64+estimateSize(m.Args))
}

// EncodeFrame returns the packed message with its length prefix.
func (MsgpackCodec) EncodeFrame(m Message) ([]byte, error) {
	f, err := packTop(make([]byte, HeaderSize), Tuple{m.MsgID, m.Flag, m.Method, m.Args}, 64+estimateSize(m.Args))
	if err != nil {
		return nil, err
	}
	return finishFrame(f)
}

// Decode unpacks a message.
func (c MsgpackCodec) Decode(p []byte) (Message, error) {
	v, err := c.DecodeValue(p)
	if err != nil {
		return Message{}, err
	}
	m, err := messageFromValue(v)
	if err != nil {
		return Message{}, fmt.Errorf("zeo: msgpack decode: %w", err)
	}
	return m, nil
}

// EncodeValue packs a single value.
func (MsgpackCodec) EncodeValue(v any) ([]byte, error) {
	return packTop(nil, v, 16+estimateSize(v))
}

// packTop appends the packing of v to prefix.
func packTop(prefix []byte, v any, sizeHint int) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, len(prefix)+sizeHint))
	buf.Write(prefix)
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	if err := packValue(enc, buf, v, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeValue unpacks a single value; the whole of p must be consumed.
func (MsgpackCodec) DecodeValue(p []byte) (any, error) {
	if v, ok := decodeSimpleMsgpack(p); ok {
		return v, nil
	}
	return decodeMsgpackLibrary(p)
}

// decodeMsgpackLibrary decodes any value through the msgpack library.
func decodeMsgpackLibrary(p []byte) (any, error) {
	r := bytes.NewReader(p)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(r) // *bytes.Reader is an io.ByteScanner: no read-ahead
	u := unpacker{dec: dec, r: r}
	v, err := u.value(0)
	if err == nil && r.Len() != 0 {
		err = fmt.Errorf("%d bytes of extra data: %w", r.Len(), ErrMalformed)
	}
	if err != nil {
		return nil, fmt.Errorf("zeo: msgpack decode at offset %d: %w", len(p)-r.Len(), err)
	}
	return v, nil
}

func packValue(enc *msgpack.Encoder, buf *bytes.Buffer, v any, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("zeo: msgpack: value nested deeper than %d: %w", MaxDepth, ErrUnsupportedValue)
	}
	switch v := v.(type) {
	case nil:
		return enc.EncodeNil()
	case bool:
		return enc.EncodeBool(v)
	case int64:
		return enc.EncodeInt(v)
	case float64:
		return enc.EncodeFloat64(v)
	case float32:
		return enc.EncodeFloat64(float64(v))
	case string:
		if uint64(len(v)) > math.MaxUint32 {
			return fmt.Errorf("zeo: msgpack: str of %d bytes: %w", len(v), ErrUnsupportedValue)
		}
		return enc.EncodeString(v)
	case []byte:
		if uint64(len(v)) > math.MaxUint32 {
			return fmt.Errorf("zeo: msgpack: bytes of %d bytes: %w", len(v), ErrUnsupportedValue)
		}
		// Not EncodeBytes: it writes nil for a nil slice.
		if err := enc.EncodeBytesLen(len(v)); err != nil {
			return err
		}
		_, err := buf.Write(v)
		return err
	case Tuple:
		return packArray(enc, buf, v, depth)
	case List:
		return packArray(enc, buf, v, depth)
	case Dict:
		return packValue(enc, buf, &v, depth)
	case *Dict:
		n := v.Len()
		if uint64(n) > math.MaxUint32 {
			return fmt.Errorf("zeo: msgpack: dict of %d items: %w", n, ErrUnsupportedValue)
		}
		if err := enc.EncodeMapLen(n); err != nil {
			return err
		}
		for _, it := range v.view() {
			if err := packValue(enc, buf, it.Key, depth+1); err != nil {
				return err
			}
			if err := packValue(enc, buf, it.Value, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if n, ok := toInt64(v); ok {
		return enc.EncodeInt(n)
	}
	if n, ok := bigInt(v); ok {
		if n.Sign() >= 0 && n.IsUint64() {
			return enc.EncodeUint(n.Uint64())
		}
		return fmt.Errorf("zeo: msgpack: integer %s out of the 64-bit range: %w", n, ErrUnsupportedValue)
	}
	return fmt.Errorf("zeo: msgpack: Go type %T: %w", v, ErrUnsupportedValue)
}

func packArray(enc *msgpack.Encoder, buf *bytes.Buffer, a []any, depth int) error {
	if uint64(len(a)) > math.MaxUint32 {
		return fmt.Errorf("zeo: msgpack: array of %d items: %w", len(a), ErrUnsupportedValue)
	}
	if err := enc.EncodeArrayLen(len(a)); err != nil {
		return err
	}
	for _, x := range a {
		if err := packValue(enc, buf, x, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// unpacker walks a msgpack stream with the library's low-level decoder,
// checking every declared length against the bytes left before allocating.
type unpacker struct {
	dec *msgpack.Decoder
	r   *bytes.Reader
}

func (u *unpacker) value(depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("msgpack nested deeper than %d: %w", MaxDepth, ErrMalformed)
	}
	c, err := u.dec.PeekCode()
	if err != nil {
		return nil, u.eof(err)
	}
	switch {
	case c == msgpcode.Nil:
		return nil, u.dec.DecodeNil()
	case c == msgpcode.False || c == msgpcode.True:
		return u.dec.DecodeBool()
	case msgpcode.IsFixedNum(c), c == msgpcode.Int8, c == msgpcode.Int16,
		c == msgpcode.Int32, c == msgpcode.Int64, c == msgpcode.Uint8,
		c == msgpcode.Uint16, c == msgpcode.Uint32:
		n, err := u.dec.DecodeInt64()
		return n, u.eof(err)
	case c == msgpcode.Uint64:
		n, err := u.dec.DecodeUint64()
		if err != nil {
			return nil, u.eof(err)
		}
		if n > math.MaxInt64 {
			return new(big.Int).SetUint64(n), nil
		}
		return int64(n), nil
	case c == msgpcode.Float, c == msgpcode.Double:
		f, err := u.dec.DecodeFloat64()
		return f, u.eof(err)
	case msgpcode.IsString(c):
		b, err := u.raw()
		if err != nil {
			return nil, err
		}
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("str is not valid UTF-8: %w", ErrMalformed)
		}
		return string(b), nil
	case msgpcode.IsBin(c):
		return u.raw()
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		n, err := u.dec.DecodeArrayLen()
		if err != nil {
			return nil, u.eof(err)
		}
		if n > u.r.Len() { // every element takes at least one byte
			return nil, fmt.Errorf("array of %d elements in %d bytes: %w", n, u.r.Len(), ErrMalformed)
		}
		t := make(Tuple, n)
		for i := range t {
			if t[i], err = u.value(depth + 1); err != nil {
				return nil, err
			}
		}
		return t, nil
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		n, err := u.dec.DecodeMapLen()
		if err != nil {
			return nil, u.eof(err)
		}
		if n > u.r.Len()/2 {
			return nil, fmt.Errorf("map of %d items in %d bytes: %w", n, u.r.Len(), ErrMalformed)
		}
		d := &Dict{items: make([]Item, 0, n), ids: make([]string, 0, n)}
		for range n {
			k, err := u.value(depth + 1)
			if err != nil {
				return nil, err
			}
			switch k.(type) {
			case string, []byte:
			default:
				return nil, fmt.Errorf("map key of type %s (only str and bytes are allowed): %w", TypeName(k), ErrMalformed)
			}
			v, err := u.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if err := d.set(k, v); err != nil {
				return nil, err
			}
		}
		return d, nil
	case msgpcode.IsExt(c):
		return nil, fmt.Errorf("extension type (code %#02x): %w", c, ErrNotAllowed)
	}
	return nil, fmt.Errorf("invalid code %#02x: %w", c, ErrMalformed)
}

// raw reads a str or bin payload.
func (u *unpacker) raw() ([]byte, error) {
	n, err := u.dec.DecodeBytesLen()
	if err != nil {
		return nil, u.eof(err)
	}
	if n > u.r.Len() {
		return nil, fmt.Errorf("%d-byte str/bin with %d bytes left: %w", n, u.r.Len(), ErrMalformed)
	}
	b := make([]byte, n)
	if err := u.dec.ReadFull(b); err != nil {
		return nil, u.eof(err)
	}
	return b, nil
}

// eof turns the library's errors (mostly io.EOF on truncated input) into
// ErrMalformed.
func (u *unpacker) eof(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}
