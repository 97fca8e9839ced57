package zeo

import (
	"errors"
	"testing"
)

func TestEncodeJSON(t *testing.T) {
	for _, v := range jsonVectors {
		got, err := EncodeJSON(v.value)
		if err != nil {
			t.Errorf("%s: %v", Repr(v.value), err)
			continue
		}
		if string(got) != v.json {
			t.Errorf("%s:\n got %s\nwant %s", Repr(v.value), got, v.json)
		}
	}
	for _, v := range []any{[]byte("x"), NewDict(Tuple{}, 1), struct{}{}} {
		if _, err := EncodeJSON(v); !errors.Is(err, ErrUnsupportedValue) {
			t.Errorf("%T: got %v, want ErrUnsupportedValue", v, err)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	for _, tc := range []struct{ in, repr string }{
		{`{"b": 1, "a": [true, null, 1.5, -3, 18446744073709551616, "\u00e9\ud83d\ude00"]}`,
			"{'b': 1, 'a': [True, None, 1.5, -3, 18446744073709551616, 'é😀']}"},
		{`{"a": 1, "a": 2}`, "{'a': 2}"},
		{`[]`, "[]"},
		{`1e3`, "1000.0"},
	} {
		v, err := DecodeJSON([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if Repr(v) != tc.repr {
			t.Errorf("%s: got %s, want %s", tc.in, Repr(v), tc.repr)
		}
	}
	for _, in := range []string{``, `{`, `[1,]`, `{} {}`, `{"a" 1}`, `NaN`} {
		if _, err := DecodeJSON([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: got %v, want ErrMalformed", in, err)
		}
	}
}
