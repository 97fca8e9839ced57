package zeo

import (
	"fmt"
	"math"
	"testing"
)

func TestDict(t *testing.T) {
	d := NewDict("a", int64(1))
	d.Set("b", int64(2))
	d.Set("a", int64(3))
	d.Set(int64(1), "one")
	d.Set(true, "true") // True == 1 in Python: same key, first position kept
	d.Set([]byte("a"), "bytes")
	d.Set(Tuple{int64(1), "x"}, "tuple")
	if got := Repr(d); got != "{'a': 3, 'b': 2, 1: 'true', b'a': 'bytes', (1, 'x'): 'tuple'}" {
		t.Errorf("got %s", got)
	}
	for _, tc := range []struct {
		key  any
		want any
	}{{1.0, "true"}, {uint8(1), "true"}, {Tuple{true, "x"}, "tuple"}, {"a", int64(3)}} {
		if v, ok := d.Get(tc.key); !ok || v != tc.want {
			t.Errorf("Get(%s) = %v, %v", Repr(tc.key), v, ok)
		}
	}
	if _, ok := d.Get(List{}); ok {
		t.Error("Get(list) found something")
	}
	if _, ok := d.Get(math.NaN()); ok {
		t.Error("Get(NaN) found something")
	}
	var keys []string
	for k := range d.All() {
		keys = append(keys, Repr(k))
	}
	if fmt.Sprint(keys) != "['a' 'b' 1 b'a' (1, 'x')]" || d.Len() != 5 || len(d.Items()) != 5 {
		t.Errorf("All: %v, Len %d", keys, d.Len())
	}

	// Large dicts switch to a map index; behaviour must not change.
	big := new(Dict) // the zero value is ready to use
	for i := range 100 {
		big.Set(fmt.Sprint(i), int64(i))
	}
	big.Set("50", "x")
	if v, _ := big.Get("50"); v != "x" || big.Len() != 100 || big.Items()[50].Value != "x" {
		t.Errorf("large dict: %v", v)
	}
	big.Set(math.NaN(), 1)
	big.Set(math.NaN(), 2) // two NaNs are two keys
	if big.Len() != 102 {
		t.Errorf("NaN keys: len %d", big.Len())
	}

	var nilDict *Dict
	if nilDict.Len() != 0 || Repr(nilDict) != "{}" {
		t.Error("nil *Dict is not an empty dict")
	}
	if _, ok := nilDict.Get("a"); ok {
		t.Error("nil *Dict Get")
	}
	for _, bad := range []func(){
		func() { NewDict("a") },
		func() { NewDict(List{}, 1) },
		func() { new(Dict).Set(Tuple{NewDict()}, 1) },
		func() { new(Dict).Set(struct{}{}, 1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			bad()
		}()
	}
	// A Dict value (not pointer) encodes like the pointer.
	p1, err1 := PickleCodec{}.EncodeValue(*NewDict("a", int64(1)))
	p2, err2 := PickleCodec{}.EncodeValue(NewDict("a", int64(1)))
	if err1 != nil || err2 != nil || string(p1) != string(p2) {
		t.Errorf("Dict value: %x %v / %x %v", p1, err1, p2, err2)
	}
}

func TestAsSeqAsInt(t *testing.T) {
	if s, ok := AsSeq(Tuple{int64(1)}); !ok || len(s) != 1 {
		t.Error("AsSeq tuple")
	}
	if s, ok := AsSeq(List{int64(1), nil}); !ok || len(s) != 2 {
		t.Error("AsSeq list")
	}
	if _, ok := AsSeq("ab"); ok {
		t.Error("AsSeq str")
	}
	for _, tc := range []struct {
		v    any
		want int64
		ok   bool
	}{
		{int64(-5), -5, true}, {int(7), 7, true}, {uint64(1 << 63), 0, false},
		{true, 1, true}, {false, 0, true}, {bi("12"), 12, true},
		{bi("99999999999999999999"), 0, false}, {1.0, 0, false}, {"1", 0, false}, {nil, 0, false},
	} {
		if got, ok := AsInt(tc.v); got != tc.want || ok != tc.ok {
			t.Errorf("AsInt(%#v) = %d, %v", tc.v, got, ok)
		}
	}
}

func TestEqual(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		a, b any
		want bool
	}{
		{int64(1), true, true},
		{int64(1), 1.0, true},
		{int64(0), false, true},
		{int64(139772912705360), bi("139772912705360"), true},
		{bi("18446744073709551616"), 18446744073709551616.0, true},
		{int64(1), 1.5, false},
		{nan, nan, false},
		{math.Inf(1), math.Inf(1), true},
		{"a", []byte("a"), false},
		{[]byte("a"), []byte("a"), true},
		{nil, nil, true},
		{nil, false, false},
		{Tuple{int64(1), "a"}, Tuple{true, "a"}, true},
		{Tuple{int64(1)}, List{int64(1)}, false},
		{List{}, List{}, true},
		{NewDict("a", int64(1), "b", Tuple{}), NewDict("b", Tuple{}, "a", 1.0), true},
		{NewDict("a", int64(1)), NewDict("a", int64(2)), false},
		{NewDict("a", int64(1)), NewDict("b", int64(1)), false},
		{NewDict(), new(Dict), true},
		{struct{}{}, struct{}{}, false},
	} {
		if got := Equal(tc.a, tc.b); got != tc.want {
			t.Errorf("Equal(%s, %s) = %v", Repr(tc.a), Repr(tc.b), got)
		}
		if got := Equal(tc.b, tc.a); got != tc.want {
			t.Errorf("Equal(%s, %s) = %v (reversed)", Repr(tc.b), Repr(tc.a), got)
		}
	}
}
