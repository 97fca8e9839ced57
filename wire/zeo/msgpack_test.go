package zeo

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func TestMsgpackDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		hex  string
		want string
		err  error
	}{
		{"float32 becomes float", "ca3fc00000", "1.5", nil},
		{"uint64 beyond int64", "cfffffffffffffffff", "18446744073709551615", nil},
		{"str8 and bin8", "92d90161c40161", "('a', b'a')", nil},
		{"nested arrays are tuples", "929190c0", "(((),), None)", nil},
		{"map keeps order", "82a16201a16102", "{'b': 1, 'a': 2}", nil},
		{"duplicate map key", "83a16101a16202a16103", "{'a': 3, 'b': 2}", nil},
		{"bytes key", "81c4016101", "{b'a': 1}", nil},

		{"int key (strict_map_key)", "810102", "", ErrMalformed},
		{"nil key", "81c001", "", ErrMalformed},
		{"invalid UTF-8 str", "a2c328", "", ErrMalformed},
		{"extra data", "c0c0", "", ErrMalformed},
		{"empty", "", "", ErrMalformed},
		{"truncated int", "cd01", "", ErrMalformed},
		{"truncated array", "930102", "", ErrMalformed},
		{"array32 claiming 2**32-1 elements", "ddffffffff", "", ErrMalformed},
		{"map32 claiming 2**32-1 items", "dfffffffff01", "", ErrMalformed},
		{"bin32 claiming 4 GiB", "c6ffffffff0102", "", ErrMalformed},
		{"str32 claiming 4 GiB", "dbffffffff0102", "", ErrMalformed},
		{"reserved code 0xc1", "c1", "", ErrMalformed},
		{"fixext1", "d40100", "", ErrNotAllowed},
		{"timestamp ext", "d6ff00000000", "", ErrNotAllowed},
		{"ext8 in map position", "81c70101", "", ErrNotAllowed},
	} {
		p, err := hex.DecodeString(tc.hex)
		if err != nil {
			t.Fatal(tc.name, err)
		}
		got, err := MsgpackCodec{}.DecodeValue(p)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: got %s, %v; want %v", tc.name, Repr(got), err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if Repr(got) != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, Repr(got), tc.want)
		}
	}
}

func TestMsgpackDepth(t *testing.T) {
	nest := func(n int) []byte { return append(bytes.Repeat([]byte{0x91}, n), 0x90) }
	if _, err := (MsgpackCodec{}).DecodeValue(nest(MaxDepth)); err != nil {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
	if _, err := (MsgpackCodec{}).DecodeValue(nest(MaxDepth + 1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("depth %d: got %v, want ErrMalformed", MaxDepth+1, err)
	}
}

func TestMsgpackEncodeGoTypes(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{[]byte(nil), "c400"}, // bin, not nil
		{uint64(1 << 63), "cf8000000000000000"},
		{int(-33), "d0df"},
		{float32(1.5), "cb3ff8000000000000"},
		{List{int64(1)}, "9101"},
	} {
		got, err := MsgpackCodec{}.EncodeValue(tc.v)
		if err != nil {
			t.Errorf("%T: %v", tc.v, err)
			continue
		}
		if hex.EncodeToString(got) != tc.want {
			t.Errorf("%T %v: got %x, want %s", tc.v, tc.v, got, tc.want)
		}
	}
	for _, v := range []any{bi("-9223372036854775809"), []any{}, map[string]any{}} {
		if _, err := (MsgpackCodec{}).EncodeValue(v); !errors.Is(err, ErrUnsupportedValue) {
			t.Errorf("%T: got %v, want ErrUnsupportedValue", v, err)
		}
	}
}
