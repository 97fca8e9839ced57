package zeo

import (
	"bytes"
	"fmt"
	"iter"
	"math"
	"math/big"
	"slices"
	"strconv"
)

// MaxDepth is the deepest nesting of containers (tuples, lists, dicts) that
// the codecs encode or decode. CPython's pickler gives up near 1000 levels
// (its recursion limit), so no Python peer can send anything deeper.
const MaxDepth = 1000

// Tuple is a Python tuple.
type Tuple []any

// List is a Python list.
type List []any

// Dict is a Python dict: its items keep insertion order, which is the order
// both encodings write them in, and keys are compared as Python compares
// them (1, 1.0 and True are one key; "a" and []byte("a") are two). Keys are
// normally strings.
//
// Like a Python dict it is used by reference: decoders produce *Dict and
// encoders take *Dict. The zero value is an empty dict ready to use.
type Dict struct {
	items []Item
	ids   []string       // key identities, parallel to items ("" = NaN)
	index map[string]int // identity -> position, built for larger dicts
}

// Item is one key/value pair of a Dict.
type Item struct {
	Key   any
	Value any
}

// indexThreshold is the size from which a Dict keeps a map index.
const indexThreshold = 8

// NewDict returns a dict holding the given key/value pairs, set in order:
//
//	zeo.NewDict("length", int64(4), "size", int64(1883))
//
// It panics if kv has odd length or a key is unhashable, like Set.
func NewDict(kv ...any) *Dict {
	if len(kv)%2 != 0 {
		panic("zeo.NewDict: odd number of arguments")
	}
	d := &Dict{items: make([]Item, 0, len(kv)/2), ids: make([]string, 0, len(kv)/2)}
	for i := 0; i < len(kv); i += 2 {
		d.Set(kv[i], kv[i+1])
	}
	return d
}

// Len returns the number of items; a nil *Dict is empty.
func (d *Dict) Len() int {
	if d == nil {
		return 0
	}
	return len(d.items)
}

// Get returns the value stored under key.
func (d *Dict) Get(key any) (any, bool) {
	if d == nil {
		return nil, false
	}
	id, err := keyID(key, 0)
	if err != nil {
		return nil, false
	}
	if i := d.find(id); i >= 0 {
		return d.items[i].Value, true
	}
	return nil, false
}

// Set replaces the value of key, or appends the pair if key is absent; an
// existing key keeps its position, as in Python. It panics if key is
// unhashable (a List, a *Dict, a Tuple holding one) or not in the value
// model, as a Go map panics on an unhashable key.
func (d *Dict) Set(key, value any) {
	if err := d.set(key, value); err != nil {
		panic("zeo: Dict.Set: " + err.Error())
	}
}

// All returns an iterator over the items in order.
func (d *Dict) All() iter.Seq2[any, any] {
	return func(yield func(any, any) bool) {
		if d == nil {
			return
		}
		for _, it := range d.items {
			if !yield(it.Key, it.Value) {
				return
			}
		}
	}
}

// Items returns a copy of the items in order.
func (d *Dict) Items() []Item {
	if d == nil {
		return nil
	}
	return slices.Clone(d.items)
}

// view returns the items without copying; callers must not modify them.
func (d *Dict) view() []Item {
	if d == nil {
		return nil
	}
	return d.items
}

// set is Set returning an error; decoders use it.
func (d *Dict) set(key, value any) error {
	id, err := keyID(key, 0)
	if err != nil {
		return err
	}
	if i := d.find(id); i >= 0 {
		d.items[i].Value = value
		return nil
	}
	d.items = append(d.items, Item{key, value})
	d.ids = append(d.ids, id)
	if d.index != nil {
		d.index[id] = len(d.items) - 1
	} else if len(d.items) > indexThreshold {
		d.index = make(map[string]int, 2*len(d.items))
		for i, kid := range d.ids {
			if kid != "" {
				d.index[kid] = i
			}
		}
	}
	return nil
}

// find returns the position of the key with identity id, or -1.
func (d *Dict) find(id string) int {
	if id == "" { // NaN equals nothing
		return -1
	}
	if d.index != nil {
		if i, ok := d.index[id]; ok {
			return i
		}
		return -1
	}
	for i, kid := range d.ids {
		if kid == id {
			return i
		}
	}
	return -1
}

// AsSeq returns the elements of a Tuple or List. Code reading arguments
// should accept both: pickle peers send lists where msgpack peers' lists
// arrive as tuples.
func AsSeq(v any) ([]any, bool) {
	switch v := v.(type) {
	case Tuple:
		return v, true
	case List:
		return v, true
	}
	return nil, false
}

// AsInt returns v as an int64 if it is an integer (any Go integer type or a
// *big.Int in range) or a bool, which Python treats as the integers 0 and 1.
func AsInt(v any) (int64, bool) {
	if b, ok := v.(bool); ok {
		if b {
			return 1, true
		}
		return 0, true
	}
	return toInt64(v)
}

// Equal reports whether a and b are equal under Python's ==: numbers compare
// by value across int, bool and float (NaN equals nothing), str never equals
// bytes, a tuple never equals a list, dicts are equal when they hold equal
// values under the same keys in any order.
func Equal(a, b any) bool {
	return equal(a, b, 0)
}

func equal(a, b any, depth int) bool {
	if depth > MaxDepth {
		return false
	}
	switch a := a.(type) {
	case nil:
		return b == nil
	case string:
		s, ok := b.(string)
		return ok && s == a
	case []byte:
		s, ok := b.([]byte)
		return ok && bytes.Equal(a, s)
	case Tuple:
		t, ok := b.(Tuple)
		return ok && equalSeq(a, t, depth)
	case List:
		l, ok := b.(List)
		return ok && equalSeq(a, l, depth)
	case *Dict:
		d, ok := b.(*Dict)
		if !ok || a.Len() != d.Len() {
			return false
		}
		for i, it := range a.items {
			id := a.ids[i]
			j := d.find(id)
			if j < 0 || !equal(it.Value, d.items[j].Value, depth+1) {
				return false
			}
		}
		return true
	}
	x, ok1 := number(a)
	y, ok2 := number(b)
	return ok1 && ok2 && x != nil && y != nil && x.Cmp(y) == 0
}

func equalSeq(a, b []any, depth int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equal(a[i], b[i], depth+1) {
			return false
		}
	}
	return true
}

// number returns a numeric value-model value as an exact big.Float (nil for
// NaN); ok is false for non-numbers.
func number(v any) (f *big.Float, ok bool) {
	switch v := v.(type) {
	case bool:
		if v {
			return big.NewFloat(1), true
		}
		return big.NewFloat(0), true
	case float64:
		if math.IsNaN(v) {
			return nil, true
		}
		return big.NewFloat(v), true
	case float32:
		return number(float64(v))
	}
	if n, ok := toInt64(v); ok {
		return new(big.Float).SetInt64(n), true
	}
	if n, ok := bigInt(v); ok {
		return new(big.Float).SetInt(n), true
	}
	return nil, false
}

// Truthy reports whether v is true in the Python sense. ZEO flags arrive as
// bool or int; any truthy reply flag means "exception".
func Truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case int64:
		return v != 0
	case int:
		return v != 0
	case *big.Int:
		return v.Sign() != 0
	case float64:
		return v != 0
	case string:
		return v != ""
	case []byte:
		return len(v) != 0
	case Tuple:
		return len(v) != 0
	case List:
		return len(v) != 0
	case *Dict:
		return v.Len() != 0
	}
	if n, ok := toInt64(v); ok {
		return n != 0
	}
	return true
}

// toInt64 converts any Go integer type whose value fits into an int64.
func toInt64(v any) (int64, bool) {
	switch v := v.(type) {
	case int:
		return int64(v), true
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint:
		return fitU64(uint64(v))
	case uint64:
		return fitU64(v)
	case uintptr:
		return fitU64(uint64(v))
	case *big.Int:
		if v != nil && v.IsInt64() {
			return v.Int64(), true
		}
	}
	return 0, false
}

func fitU64(u uint64) (int64, bool) {
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// bigInt returns v as a *big.Int if it is an integer type too large for
// int64 (a big uint64 or a big *big.Int).
func bigInt(v any) (*big.Int, bool) {
	switch v := v.(type) {
	case uint64:
		return new(big.Int).SetUint64(v), true
	case uint:
		return new(big.Int).SetUint64(uint64(v)), true
	case uintptr:
		return new(big.Int).SetUint64(uint64(v)), true
	case *big.Int:
		if v != nil {
			return v, true
		}
	}
	return nil, false
}

// normInt returns the value-model form of an integer: int64 when it fits,
// *big.Int otherwise.
func normInt(b *big.Int) any {
	if b.IsInt64() {
		return b.Int64()
	}
	return b
}

// keyID returns a string that is equal for two dict keys exactly when Python
// considers them equal (1 == 1.0 == True, str != bytes), or an error for
// unhashable keys (lists, dicts, tuples containing them). A key holding a
// NaN gets "", which callers must treat as equal to nothing: every decoded
// NaN is a distinct Python object, unequal to any other.
func keyID(k any, depth int) (string, error) {
	var nan bool
	b, err := appendKeyID(nil, k, depth, &nan)
	if err != nil || nan {
		return "", err
	}
	return string(b), nil
}

// appendKeyID appends the self-delimiting identity of k; it runs in time
// linear in the size of k.
func appendKeyID(b []byte, k any, depth int, nan *bool) ([]byte, error) {
	if depth > MaxDepth {
		return b, fmt.Errorf("dict key nested deeper than %d: %w", MaxDepth, ErrMalformed)
	}
	switch k := k.(type) {
	case nil:
		return append(b, 'N'), nil
	case bool:
		if k {
			return append(b, "i1;"...), nil
		}
		return append(b, "i0;"...), nil
	case string:
		b = strconv.AppendInt(append(b, 's'), int64(len(k)), 10)
		return append(append(b, ':'), k...), nil
	case []byte:
		b = strconv.AppendInt(append(b, 'b'), int64(len(k)), 10)
		return append(append(b, ':'), k...), nil
	case float64:
		*nan = *nan || math.IsNaN(k)
		return appendFloatKeyID(b, k), nil
	case float32:
		*nan = *nan || math.IsNaN(float64(k))
		return appendFloatKeyID(b, float64(k)), nil
	case Tuple:
		b = strconv.AppendInt(append(b, 't'), int64(len(k)), 10)
		b = append(b, ':')
		for _, e := range k {
			var err error
			if b, err = appendKeyID(b, e, depth+1, nan); err != nil {
				return b, err
			}
		}
		return b, nil
	case List, *Dict, Dict:
		return b, fmt.Errorf("unhashable dict key of type %s: %w", TypeName(k), ErrMalformed)
	}
	if n, ok := toInt64(k); ok {
		return append(strconv.AppendInt(append(b, 'i'), n, 10), ';'), nil
	}
	if n, ok := bigInt(k); ok {
		return append(n.Append(append(b, 'i'), 10), ';'), nil
	}
	return b, fmt.Errorf("dict key of Go type %T: %w", k, ErrUnsupportedValue)
}

func appendFloatKeyID(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "fnan;"...) // the caller marks the key unmatchable
	case math.IsInf(f, 0) || f != math.Trunc(f):
		return append(strconv.AppendFloat(append(b, 'f'), f, 'g', -1, 64), ';')
	}
	n, _ := new(big.Float).SetFloat64(f).Int(nil) // integral: equal to an int
	return append(n.Append(append(b, 'i'), 10), ';')
}

// TypeName names the Python type of a value-model value, for messages.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case float64, float32:
		return "float"
	case Tuple:
		return "tuple"
	case List:
		return "list"
	case *Dict, Dict:
		return "dict"
	}
	if _, ok := toInt64(v); ok {
		return "int"
	}
	if _, ok := bigInt(v); ok {
		return "int"
	}
	return fmt.Sprintf("Go %T", v)
}
