package zeo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf16"
)

// EncodeJSON returns v as Python's json.dumps(v) writes it (", " and ": "
// separators, ensure_ascii, keys in Dict order), the format of the ruok
// status reply: a dict mapping each storage name to its server_status dict.
// Tuples and lists become arrays; bytes cannot be encoded, as in Python.
func EncodeJSON(v any) ([]byte, error) {
	return appendJSON(nil, v, 0)
}

func appendJSON(b []byte, v any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return b, fmt.Errorf("zeo: json: value nested deeper than %d: %w", MaxDepth, ErrUnsupportedValue)
	}
	var err error
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case float64:
		return appendJSONFloat(b, v), nil
	case float32:
		return appendJSONFloat(b, float64(v)), nil
	case string:
		return appendJSONString(b, v), nil
	case Tuple:
		return appendJSONArray(b, v, depth)
	case List:
		return appendJSONArray(b, v, depth)
	case Dict:
		return appendJSON(b, &v, depth)
	case *Dict:
		b = append(b, '{')
		for i, it := range v.view() {
			if i > 0 {
				b = append(b, ", "...)
			}
			// json.dumps converts str, int, float, bool and None keys.
			switch k := it.Key.(type) {
			case string:
				b = appendJSONString(b, k)
			case nil, bool, float64, float32:
				kb, _ := appendJSON(nil, k, 0)
				b = appendJSONString(b, string(kb))
			default:
				if _, ok := toInt64(k); !ok {
					if _, ok := bigInt(k); !ok {
						return b, fmt.Errorf("zeo: json: dict key of type %s: %w", TypeName(k), ErrUnsupportedValue)
					}
				}
				b = appendJSONString(b, Repr(k))
			}
			b = append(b, ": "...)
			if b, err = appendJSON(b, it.Value, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	}
	if n, ok := toInt64(v); ok {
		return strconv.AppendInt(b, n, 10), nil
	}
	if n, ok := bigInt(v); ok {
		return n.Append(b, 10), nil
	}
	return b, fmt.Errorf("zeo: json: %s: %w", TypeName(v), ErrUnsupportedValue)
}

func appendJSONArray(b []byte, a []any, depth int) ([]byte, error) {
	b = append(b, '[')
	for i, x := range a {
		if i > 0 {
			b = append(b, ", "...)
		}
		var err error
		if b, err = appendJSON(b, x, depth+1); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

func appendJSONFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	return appendFloatRepr(b, f)
}

// appendJSONString quotes s like json.dumps with ensure_ascii=True.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s { // invalid UTF-8 reads as U+FFFD
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r < 0x20 || (r >= 0x7f && r < 0x10000):
			b = fmt.Appendf(b, "\\u%04x", r)
		case r >= 0x10000:
			r1, r2 := utf16.EncodeRune(r)
			b = fmt.Appendf(b, "\\u%04x\\u%04x", r1, r2)
		default:
			b = append(b, byte(r))
		}
	}
	return append(b, '"')
}

// DecodeJSON parses JSON into the value model keeping object key order:
// objects become Dict, arrays List, integers int64 (or *big.Int), other
// numbers float64. It reads the ruok status reply.
func DecodeJSON(p []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	v, err := decodeJSONValue(dec, 0)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = fmt.Errorf("trailing data: %w", ErrMalformed)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("zeo: json decode: %w", err)
	}
	return v, nil
}

func decodeJSONValue(dec *json.Decoder, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("json nested deeper than %d: %w", MaxDepth, ErrMalformed)
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch t := tok.(type) {
	case nil, bool, string:
		return t, nil
	case json.Number:
		if n, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return n, nil
		}
		if !strings.ContainsAny(string(t), ".eE") {
			if n, ok := new(big.Int).SetString(string(t), 10); ok {
				return n, nil
			}
		}
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", t, ErrMalformed)
		}
		return f, nil
	case json.Delim:
		switch t {
		case '[':
			l := List{}
			for dec.More() {
				x, err := decodeJSONValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				l = append(l, x)
			}
			return l, jsonClose(dec)
		case '{':
			d := new(Dict)
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
				}
				x, err := decodeJSONValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				if err := d.set(k, x); err != nil {
					return nil, err
				}
			}
			return d, jsonClose(dec)
		}
	}
	return nil, fmt.Errorf("unexpected JSON token %v: %w", tok, ErrMalformed)
}

// jsonClose consumes the closing delimiter of an array or object.
func jsonClose(dec *json.Decoder) error {
	if _, err := dec.Token(); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}
