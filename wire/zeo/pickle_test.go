package zeo

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestPickleDecodeVectors(t *testing.T) {
	var c PickleCodec
	for _, v := range pickleDecodeVectors {
		p, err := hex.DecodeString(v.hex)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.DecodeValue(p)
		if v.repr == "" {
			if !errors.Is(err, ErrNotAllowed) {
				t.Errorf("%s: got %s, %v; want ErrNotAllowed", v.name, Repr(got), err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", v.name, err)
			continue
		}
		if Repr(got) != v.repr {
			t.Errorf("%s:\n got %s\nwant %s", v.name, Repr(got), v.repr)
		}
	}
}

// pk builds a pickle from opcode strings: PROTO 3 + body + STOP.
func pk(body ...string) []byte {
	return []byte("\x80\x03" + strings.Join(body, "") + ".")
}

func TestPickleDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    []byte
		want string // repr, or "" when err is set
		err  error
	}{
		{"heartbeat msgid", pk("J\xff\xff\xff\xff"), "-1", nil},
		{"LONG1 empty is 0", pk("\x8a\x00"), "0", nil},
		{"LONG1 -1", pk("\x8a\x01\xff"), "-1", nil},
		{"LONG1 2**63", pk("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00"), "9223372036854775808", nil},
		{"LONG1 128 bytes (og-rek reads this length as negative)", pk("\x8a\x80" + strings.Repeat("\x00", 127) + "\x40"), "2^1022", nil},
		{"LONG1 -2**1023", pk("\x8a\x80" + strings.Repeat("\x00", 127) + "\x80"), "-2^1023", nil},
		{"LONG4", pk("\x8b\x02\x00\x00\x00\x00\x01"), "256", nil},
		{"SHORT_BINUNICODE", pk("\x8c\x02\xc3\xa9"), "'é'", nil},
		{"SHORT_BINSTRING (Python 2 str) is str", pk("U\x03abc"), "'abc'", nil},
		{"BINSTRING", pk("T\x01\x00\x00\x00a"), "'a'", nil},
		{"DICT opcode keeps order", pk("(X\x01\x00\x00\x00bK\x01X\x01\x00\x00\x00aK\x02d"), "{'b': 1, 'a': 2}", nil},
		{"duplicate key keeps first position, last value", pk("}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bK\x02X\x01\x00\x00\x00aK\x03u"), "{'a': 3, 'b': 2}", nil},
		{"1, True and 1.0 are one key", pk("}(K\x01K\x01\x88K\x02G\x3f\xf0\x00\x00\x00\x00\x00\x00K\x03u"), "{1: 3}", nil},
		{"str and bytes keys differ", pk("}(X\x01\x00\x00\x00aK\x01C\x01aK\x02u"), "{'a': 1, b'a': 2}", nil},
		{"tuple key", pk("}K\x01K\x02\x86K\x03s"), "{(1, 2): 3}", nil},
		{"SETITEMS in two batches", pk("}(K\x01K\x01u(K\x02K\x02u(u"), "{1: 1, 2: 2}", nil},
		{"nested dict in list", pk("](}K\x01}sK\x02e"), "[{1: {}}, 2]", nil},
		{"memo writes are tolerated", pk("]q\x00(K\x01r\x01\x00\x00\x00e\x94"), "[1]", nil},
		{"FRAME", []byte("\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00K\x05."), "5", nil},

		{"list key is unhashable", pk("}]K\x01s"), "", ErrMalformed},
		{"dict key is unhashable", pk("}}K\x01s"), "", ErrMalformed},
		{"tuple holding a list is unhashable", pk("}]\x85K\x01s"), "", ErrMalformed},
		{"SETITEM on a list", pk("]K\x01K\x02s"), "", ErrMalformed},
		{"APPEND on a dict", pk("}K\x01a"), "", ErrMalformed},
		{"APPENDS on a dict", pk("}(K\x01e"), "", ErrMalformed},
		{"SETITEMS with odd items", pk("}(K\x01u"), "", ErrMalformed},
		{"SETITEMS without mark", pk("}K\x01K\x02u"), "", ErrMalformed},
		{"bare MARK", pk("("), "", ErrMalformed},
		{"empty stack", pk(""), "", ErrMalformed},
		{"no STOP", []byte("\x80\x03N"), "", ErrMalformed},
		{"empty", []byte{}, "", ErrMalformed},
		{"bytes after STOP", append(pk("N"), 'N'), "", ErrMalformed},
		{"truncated BINBYTES", pk("B\xff\xff\xff\x7fabc"), "", ErrMalformed},
		{"truncated BINUNICODE", pk("X\x10\x00\x00\x00abc"), "", ErrMalformed},
		{"truncated SHORT_BINBYTES", []byte("\x80\x03C\x05ab"), "", ErrMalformed},
		{"truncated LONG1", []byte("\x80\x03\x8a\x05ab"), "", ErrMalformed},
		{"truncated LONG4", []byte("\x80\x03\x8b\xff\xff\xff\xff"), "", ErrMalformed},
		{"truncated BININT", []byte("\x80\x03J\x01"), "", ErrMalformed},
		{"bad PROTO", pk("\x80\x09N"), "", ErrMalformed},
		{"unknown opcode", pk("\xffN"), "", ErrMalformed},
		{"GLOBAL", pk("cbuiltins\neval\n"), "", ErrNotAllowed},
		{"STACK_GLOBAL", pk("\x8c\x01a\x8c\x01b\x93"), "", ErrNotAllowed},
		{"BINPERSID", pk("NQ"), "", ErrNotAllowed},
		{"BINGET of None", pk("Nq\x00h\x00\x86"), "(None, None)", nil},
		{"LONG_BINGET of str", pk("X\x01\x00\x00\x00ar\x07\x01\x00\x00j\x07\x01\x00\x00\x86"), "('a', 'a')", nil},
		{"BINGET of a list", pk("]q\x00h\x00\x86"), "", ErrNotAllowed},
		{"BINGET of a dict", pk("}q\x00h\x00\x86"), "", ErrNotAllowed},
		{"BINGET of a list inside a tuple is fine", pk("]\x85q\x00h\x00\x86"), "(([],), ([],))", nil},
		{"BINGET of an unknown index", pk("h\x05"), "", ErrMalformed},
		{"truncated LONG_BINGET", []byte("\x80\x03j\x00"), "", ErrMalformed},
		{"text GET", pk("Np0\ng0\n"), "", ErrNotAllowed},
		{"DUP", pk("]2"), "", ErrNotAllowed},
		{"POP", pk("NN0"), "", ErrNotAllowed},
		{"INT text opcode", pk("I1\n"), "", ErrNotAllowed},
		{"EMPTY_SET", pk("\x8f"), "", ErrNotAllowed},
	} {
		got, err := PickleCodec{}.DecodeValue(tc.p)
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
		want := tc.want
		switch want { // big values spelled as powers
		case "2^1022":
			want = bi("1").Lsh(bi("1"), 1022).String()
		case "-2^1023":
			want = "-" + bi("1").Lsh(bi("1"), 1023).String()
		}
		if Repr(got) != want {
			t.Errorf("%s: got %s, want %s", tc.name, Repr(got), want)
		}
	}
}

func TestPickleGlobalErrorNamesIt(t *testing.T) {
	_, err := PickleCodec{}.DecodeValue(pk("cos\nsystem\n"))
	if err == nil || !strings.Contains(err.Error(), "os.system") {
		t.Fatalf("error %v does not name the global", err)
	}
}

func TestPickleDepth(t *testing.T) {
	nest := func(n int) []byte {
		return pk(strings.Repeat("]", n+1) + strings.Repeat("a", n))
	}
	if _, err := (PickleCodec{}).DecodeValue(nest(MaxDepth)); err != nil {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
	if _, err := (PickleCodec{}).DecodeValue(nest(MaxDepth + 1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("depth %d: got %v, want ErrMalformed", MaxDepth+1, err)
	}
	// Encoding a self-containing value fails instead of overflowing the stack.
	cyc := List{nil}
	cyc[0] = cyc
	if _, err := (PickleCodec{}).EncodeValue(cyc); !errors.Is(err, ErrUnsupportedValue) {
		t.Errorf("cyclic value: got %v, want ErrUnsupportedValue", err)
	}
	if _, err := (MsgpackCodec{}).EncodeValue(cyc); !errors.Is(err, ErrUnsupportedValue) {
		t.Errorf("cyclic value (msgpack): got %v, want ErrUnsupportedValue", err)
	}
}

func TestPickleEncodeGoTypes(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{int(300), "4d2c01"},
		{int8(-1), "4affffffff"},
		{uint16(65535), "4dffff"},
		{uint32(1 << 31), "8a050000008000"},
		{uint64(1 << 63), "8a09000000000000008000"},
		{float32(1.5), "473ff8000000000000"},
		{[]byte(nil), "4300"},
		{bi("-1"), "4affffffff"},
	} {
		got, err := PickleCodec{}.EncodeValue(tc.v)
		if err != nil {
			t.Errorf("%T %v: %v", tc.v, tc.v, err)
			continue
		}
		if h := hex.EncodeToString(got[2 : len(got)-1]); h != tc.want {
			t.Errorf("%T %v: got %s, want %s", tc.v, tc.v, h, tc.want)
		}
	}
	for _, v := range []any{[]any{1}, map[string]any{}, struct{}{}, []string{"a"}} {
		if _, err := (PickleCodec{}).EncodeValue(v); !errors.Is(err, ErrUnsupportedValue) {
			t.Errorf("%T: got %v, want ErrUnsupportedValue", v, err)
		}
	}
}

func TestPickleDecodeDoesNotAlias(t *testing.T) {
	p := pk("C\x03abc")
	v, err := PickleCodec{}.DecodeValue(p)
	if err != nil {
		t.Fatal(err)
	}
	copy(p, bytes.Repeat([]byte{'z'}, len(p)))
	if !bytes.Equal(v.([]byte), []byte("abc")) {
		t.Fatalf("decoded bytes alias the input: %q", v)
	}
}
