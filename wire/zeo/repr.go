package zeo

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Repr returns the Python repr() of a value-model value, as Python 3 prints
// it: b'...' for bytes, '...' for str, (x,) for a one-tuple, True/None, and
// float reprs such as 1709251206.0 or 1e+16. It is meant for logs and error
// messages. Values outside the value model are shown as <Go T>.
func Repr(v any) string {
	var r reprer
	return string(r.append(nil, v, 0))
}

// reprer formats values; bytesHook, when set, may replace the repr of a bytes
// value (tests use it for the fixtures' abbreviation of long data).
type reprer struct {
	bytesHook func(dst, b []byte) ([]byte, bool)
}

func (r *reprer) append(dst []byte, v any, depth int) []byte {
	if depth > MaxDepth {
		return append(dst, "..."...)
	}
	switch v := v.(type) {
	case nil:
		return append(dst, "None"...)
	case bool:
		if v {
			return append(dst, "True"...)
		}
		return append(dst, "False"...)
	case float64:
		return appendFloatRepr(dst, v)
	case float32:
		return appendFloatRepr(dst, float64(v))
	case string:
		return appendStrRepr(dst, v)
	case []byte:
		if r.bytesHook != nil {
			if out, ok := r.bytesHook(dst, v); ok {
				return out
			}
		}
		return appendBytesRepr(dst, v)
	case Tuple:
		dst = append(dst, '(')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = r.append(dst, e, depth+1)
		}
		if len(v) == 1 {
			dst = append(dst, ',')
		}
		return append(dst, ')')
	case List:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = r.append(dst, e, depth+1)
		}
		return append(dst, ']')
	case Dict:
		return r.append(dst, &v, depth)
	case *Dict:
		dst = append(dst, '{')
		for i, it := range v.view() {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = r.append(dst, it.Key, depth+1)
			dst = append(dst, ": "...)
			dst = r.append(dst, it.Value, depth+1)
		}
		return append(dst, '}')
	case *big.Int:
		if v == nil {
			break
		}
		return v.Append(dst, 10)
	}
	if n, ok := toInt64(v); ok {
		return strconv.AppendInt(dst, n, 10)
	}
	if b, ok := bigInt(v); ok {
		return b.Append(dst, 10)
	}
	return fmt.Appendf(dst, "<Go %T>", v)
}

// appendFloatRepr formats f like Python's repr(float): the shortest
// round-tripping digits, positional notation when the decimal exponent is in
// [-4, 16), otherwise scientific with at least two exponent digits.
func appendFloatRepr(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "nan"...)
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	}
	if math.Signbit(f) {
		dst = append(dst, '-')
		f = -f
	}
	if f == 0 {
		return append(dst, "0.0"...)
	}
	// "d.ddde±XX" -> digits and the decimal point position.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	decpt := x + 1 // value = 0.digits * 10**decpt
	if decpt <= -4 || decpt > 16 {
		dst = append(dst, digits[0])
		if len(digits) > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if x < 0 {
			dst = append(dst, '-')
			x = -x
		} else {
			dst = append(dst, '+')
		}
		if x < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(x), 10)
	}
	switch {
	case decpt <= 0:
		dst = append(dst, "0."...)
		dst = append(dst, strings.Repeat("0", -decpt)...)
		dst = append(dst, digits...)
	case decpt >= len(digits):
		dst = append(dst, digits...)
		dst = append(dst, strings.Repeat("0", decpt-len(digits))...)
		dst = append(dst, ".0"...)
	default:
		dst = append(dst, digits[:decpt]...)
		dst = append(dst, '.')
		dst = append(dst, digits[decpt:]...)
	}
	return dst
}

// pyQuote picks the quote character Python's repr uses.
func pyQuote(s string) byte {
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		return '"'
	}
	return '\''
}

const hexDigits = "0123456789abcdef"

func appendStrRepr(dst []byte, s string) []byte {
	q := pyQuote(s)
	dst = append(dst, q)
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			// Not representable in Python; show the raw byte.
			dst = append(dst, '\\', 'x', hexDigits[s[i]>>4], hexDigits[s[i]&15])
			i++
			continue
		}
		i += size
		switch {
		case c == rune(q) || c == '\\':
			dst = append(dst, '\\', byte(c))
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c < ' ' || c == 0x7f:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&15])
		case c < 0x7f:
			dst = append(dst, byte(c))
		case unicode.IsPrint(c):
			dst = utf8.AppendRune(dst, c)
		case c <= 0xff:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&15])
		case c <= 0xffff:
			dst = fmt.Appendf(dst, "\\u%04x", c)
		default:
			dst = fmt.Appendf(dst, "\\U%08x", c)
		}
	}
	return append(dst, q)
}

func appendBytesRepr(dst, b []byte) []byte {
	q := byte('\'')
	if bytes.IndexByte(b, '\'') >= 0 && bytes.IndexByte(b, '"') < 0 {
		q = '"'
	}
	dst = append(dst, 'b', q)
	for _, c := range b {
		switch {
		case c == q || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c < ' ' || c >= 0x7f:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, q)
}
