package zrs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"runtime"
	"strings"
	"testing"

	"github.com/zrs-go/zrs/wire/zeo"
)

// pickleVectors were produced by CPython 3.11's C pickler with protocol 1
// and fast = 1 (the STOP opcode stripped), see testdata/gen_vectors.py.
var pickleVectors = []struct {
	name  string
	value any
	want  string // hex, or sha256:hex of longer pickles
}{
	{`nil`, nil, "4e"},
	{`true`, true, "4930310a"},
	{`false`, false, "4930300a"},
	{`int64(0)`, int64(0), "4b00"},
	{`int64(255)`, int64(255), "4bff"},
	{`int64(256)`, int64(256), "4d0001"},
	{`int64(65535)`, int64(65535), "4dffff"},
	{`int64(65536)`, int64(65536), "4a00000100"},
	{`int64(-1)`, int64(-1), "4affffffff"},
	{`int64(math.MinInt32)`, int64(math.MinInt32), "4a00000080"},
	{`int64(math.MaxInt32)`, int64(math.MaxInt32), "4affffff7f"},
	{`int64(math.MaxInt32 + 1)`, int64(math.MaxInt32 + 1), "4c323134373438333634384c0a"},
	{`int64(math.MinInt32 - 1)`, int64(math.MinInt32 - 1), "4c2d323134373438333634394c0a"},
	{`int64(math.MaxInt64)`, int64(math.MaxInt64), "4c393232333337323033363835343737353830374c0a"},
	{`int64(math.MinInt64)`, int64(math.MinInt64), "4c2d393232333337323033363835343737353830384c0a"},
	{`bigInt("18446744073709551616")`, bigInt("18446744073709551616"), "4c31383434363734343037333730393535313631364c0a"},
	{`bigInt("-100000000000000000000000000000")`, bigInt("-100000000000000000000000000000"), "4c2d3130303030303030303030303030303030303030303030303030303030304c0a"},
	{`1.5`, 1.5, "473ff8000000000000"},
	{`negative zero`, math.Copysign(0, -1), "478000000000000000"},
	{`math.Inf(1)`, math.Inf(1), "477ff0000000000000"},
	{`""`, "", "5800000000"},
	{`"abc"`, "abc", "5803000000616263"},
	{`"ü✓😀"`, "ü✓😀", "5809000000c3bce29c93f09f9880"},
	{`"\xed\xb2\x80"`, "\xed\xb2\x80", "5803000000edb280"},
	{`[]byte{}`, []byte{}, "635f5f6275696c74696e5f5f0a62797465730a2952"},
	{`[]byte("abc")`, []byte("abc"), "635f636f646563730a656e636f64650a28580300000061626358060000006c6174696e317452"},
	{`[]byte{0, 0x7f, 0x80, 0xff}`, []byte{0, 0x7f, 0x80, 0xff}, "635f636f646563730a656e636f64650a285806000000007fc280c3bf58060000006c6174696e317452"},
	{`zeo.Tuple{}`, zeo.Tuple{}, "29"},
	{`zeo.Tuple{int64(1)}`, zeo.Tuple{int64(1)}, "284b0174"},
	{`zeo.Tuple{int64(1), "a", nil}`, zeo.Tuple{int64(1), "a", nil}, "284b015801000000614e74"},
	{`zeo.List{}`, zeo.List{}, "5d"},
	{`zeo.List{int64(1)}`, zeo.List{int64(1)}, "5d4b0161"},
	{`zeo.List{int64(1), int64(2)}`, zeo.List{int64(1), int64(2)}, "5d284b014b0265"},
	{`seq(zeo.List{}, 1000)`, seq(zeo.List{}, 1000), "sha256:ccaf7ca9baa0b94dbbca0ab5d4f8cfe66f3f3fb07fd6f10df848839412504f0c"},
	{`seq(zeo.List{}, 1001)`, seq(zeo.List{}, 1001), "sha256:161163fd15b7ef489aa1f4d980d9a1b806ebff1a9c72cc871f260910024f977e"},
	{`seq(zeo.List{}, 2000)`, seq(zeo.List{}, 2000), "sha256:abbb7cfca10f7fbfd64fe880309f887abc211cf5888595bf156976db7cd8d6b4"},
	{`zeo.NewDict()`, zeo.NewDict(), "7d"},
	{`zeo.NewDict("a", int64(1))`, zeo.NewDict("a", int64(1)), "7d5801000000614b0173"},
	{`zeo.NewDict("a", int64(1), "b", []byte("x"))`, zeo.NewDict("a", int64(1), "b", []byte("x")), "7d285801000000614b01580100000062635f636f646563730a656e636f64650a2858010000007858060000006c6174696e31745275"},
	{`dictN(1000)`, dictN(1000), "sha256:abbc00864dda52b45461443861f2e2f27958bbcc38e88b54dc277da7c655cd0d"},
	{`dictN(1001)`, dictN(1001), "sha256:ad752d6fc36188ef44171b3a6e55d70be94f7f22f256974dd29b67ee99ddec17"},
	{`dictN(2000)`, dictN(2000), "sha256:4a7f42299bf4f408f206fc8bb7dbc3e233819256557de3d4188919b3e0f9c0d7"},
	{`zeo.NewDict(zeo.Tuple{int64(1), "k"}, zeo.List{zeo.NewDict("n", nil)}, 2.5, false)`, zeo.NewDict(zeo.Tuple{int64(1), "k"}, zeo.List{zeo.NewDict("n", nil)}, 2.5, false), "7d28284b0158010000006b745d7d58010000006e4e73614740040000000000004930300a75"},
}

func bigInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return n
}

// seq returns l with the integers 0..n-1 appended.
func seq(l zeo.List, n int) zeo.List {
	for i := range n {
		l = append(l, int64(i))
	}
	return l
}

// dictN returns {0: 0, 1: 1, ..., n-1: n-1}.
func dictN(n int) *zeo.Dict {
	d := new(zeo.Dict)
	for i := range n {
		d.Set(int64(i), int64(i))
	}
	return d
}

func TestPickleVectors(t *testing.T) {
	for _, v := range pickleVectors {
		got, err := appendPickleValue(nil, v.value, 0)
		if err != nil {
			t.Errorf("%s: %v", v.name, err)
			continue
		}
		if sha, ok := strings.CutPrefix(v.want, "sha256:"); ok {
			sum := sha256.Sum256(got)
			if hex.EncodeToString(sum[:]) != sha {
				t.Errorf("%s: pickle of %d bytes has the wrong sha256", v.name, len(got))
			}
		} else if hex.EncodeToString(got) != v.want {
			t.Errorf("%s:\n got %x\nwant %s", v.name, got, v.want)
		}
		// The decoder reads it back to an equal value that encodes the same.
		back, err := decodePickle(append(got, opStop))
		if err != nil {
			t.Errorf("%s: decode: %v", v.name, err)
			continue
		}
		if !zeo.Equal(back, v.value) {
			t.Errorf("%s: decoded %s", v.name, zeo.Repr(back))
		}
		again, err := appendPickleValue(nil, back, 0)
		if err != nil || !bytes.Equal(again, got) {
			t.Errorf("%s: re-encoding the decoded value differs (%v)", v.name, err)
		}
	}
}

func TestPickleEncodeErrors(t *testing.T) {
	deep := any(zeo.List{})
	for range zeo.MaxDepth + 1 {
		deep = zeo.List{deep}
	}
	huge := new(big.Int).Exp(big.NewInt(10), big.NewInt(maxIntDigits), nil) // 4301 digits
	for name, v := range map[string]any{
		"struct":    struct{}{},
		"deep list": deep,
		"huge int":  huge,
		"nil big":   (*big.Int)(nil),
		"map":       map[string]any{},
	} {
		if _, err := appendPickleValue(nil, v, 0); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", name, err)
		}
	}
	ok := new(big.Int).Sub(huge, big.NewInt(1)) // 4300 digits: Python writes it
	if _, err := appendPickleValue(nil, ok, 0); err != nil {
		t.Errorf("4300-digit int: %v", err)
	}
}

func TestPickleDecodeAccepts(t *testing.T) {
	for _, c := range []struct {
		name string
		p    string
		want any
	}{
		{"proto 2 opcodes", "\x80\x02\x88\x89\x85\x86.", zeo.Tuple{true, zeo.Tuple{false}}},
		{"tuple3", "K\x01K\x02K\x03\x87.", zeo.Tuple{int64(1), int64(2), int64(3)}},
		{"long1", "\x8a\x02\xff\x7f.", int64(0x7fff)},
		{"long1 negative", "\x8a\x01\xff.", int64(-1)},
		{"long1 empty", "\x8a\x00.", int64(0)},
		{"long4 big", "\x8b\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01.", bigInt("18446744073709551616")},
		{"INT text", "I-42\n.", int64(-42)},
		{"INT big text", "I99999999999999999999\n.", bigInt("99999999999999999999")},
		{"LONG without L", "L7\n.", int64(7)},
		{"short binunicode", "\x8c\x02\xc3\xbc.", "ü"},
		{"binbytes", "C\x02ab.", []byte("ab")},
		{"builtins.bytes", "cbuiltins\nbytes\n)R.", []byte{}},
		{"latin-1 spelled with a dash", "c_codecs\nencode\n(X\x02\x00\x00\x00\xc3\xbfX\x07\x00\x00\x00latin-1tR.", []byte{0xff}},
		{"list and dict opcodes", "(K\x01l(X\x01\x00\x00\x00aK\x02d\x86.", zeo.Tuple{zeo.List{int64(1)}, zeo.NewDict("a", int64(2))}},
		{"Python 2 str dict", "}(U\x01kU\x01vU\x02k2U\x02\xff\xfeu.", zeo.NewDict("k", legacyStr("v"), "k2", legacyStr("\xff\xfe"))},
		{"duplicate key keeps first position", "}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bK\x02X\x01\x00\x00\x00aK\x03u.", zeo.NewDict("a", int64(3), "b", int64(2))},
	} {
		got, err := decodePickle([]byte(c.p))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !equalLegacy(got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, got, c.want)
		}
	}
}

// equalLegacy is zeo.Equal that also compares legacyStr values.
func equalLegacy(a, b any) bool {
	if x, ok := a.(legacyStr); ok {
		y, ok := b.(legacyStr)
		return ok && x == y
	}
	switch x := a.(type) {
	case zeo.Tuple:
		y, ok := b.(zeo.Tuple)
		return ok && equalSeqLegacy(x, y)
	case zeo.List:
		y, ok := b.(zeo.List)
		return ok && equalSeqLegacy(x, y)
	case *zeo.Dict:
		y, ok := b.(*zeo.Dict)
		if !ok || x.Len() != y.Len() {
			return false
		}
		xi, yi := x.Items(), y.Items()
		for i := range xi {
			if !equalLegacy(xi[i].Key, yi[i].Key) || !equalLegacy(xi[i].Value, yi[i].Value) {
				return false
			}
		}
		return true
	}
	return zeo.Equal(a, b)
}

func equalSeqLegacy(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equalLegacy(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestPickleDecodeRejects(t *testing.T) {
	deep := strings.Repeat("]", zeo.MaxDepth+1) + strings.Repeat("a", zeo.MaxDepth) + "."
	deepTuple := strings.Repeat("(", zeo.MaxDepth+1) + strings.Repeat("t", zeo.MaxDepth+1) + "."
	for _, c := range []struct {
		name string
		p    string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"no stop", "N", ErrMalformed},
		{"trailing", "N.N", ErrMalformed},
		{"two values", "NN.", ErrMalformed},
		{"mark left", "(N.", ErrMalformed},
		{"empty stack", ".", ErrMalformed},
		{"os.system", "cos\nsystem\n(X\x02\x00\x00\x00lstR.", ErrNotAllowed},
		{"global as value", "c_codecs\nencode\n.", ErrNotAllowed},
		{"global in tuple", "(c_codecs\nencode\nt.", ErrNotAllowed},
		{"reduce non-global", "N)R.", ErrNotAllowed},
		{"bytes with args", "c__builtin__\nbytes\n(K\x01tR.", ErrNotAllowed},
		{"encode utf-8", "c_codecs\nencode\n(X\x01\x00\x00\x00aX\x05\x00\x00\x00utf-8tR.", ErrNotAllowed},
		{"encode one arg", "c_codecs\nencode\n(X\x01\x00\x00\x00atR.", ErrNotAllowed},
		{"encode non-latin-1", "c_codecs\nencode\n(X\x03\x00\x00\x00\xe2\x9c\x93X\x06\x00\x00\x00latin1tR.", ErrMalformed},
		{"encode bytes arg", "c_codecs\nencode\n(C\x01aX\x06\x00\x00\x00latin1tR.", ErrMalformed},
		{"reduce args not tuple", "c_codecs\nencode\nNR.", ErrMalformed},
		{"unterminated global", "c_codecs\nencode", ErrMalformed},
		{"memo put", "Nq\x00.", ErrNotAllowed},
		{"memo get", "Nh\x00.", ErrNotAllowed},
		{"persid", "NQ.", ErrNotAllowed},
		{"build", "NNb.", ErrNotAllowed},
		{"text string", "S'a'\n.", ErrNotAllowed},
		{"unknown opcode", "\xff.", ErrMalformed},
		{"truncated binunicode", "X\x05\x00\x00\x00ab.", ErrMalformed},
		{"huge binunicode length", "X\xff\xff\xff\xff.", ErrMalformed},
		{"truncated binint", "J\x01\x00.", ErrMalformed},
		{"truncated short binstring", "U\x05ab", ErrMalformed},
		{"invalid utf-8", "X\x01\x00\x00\x00\xff.", ErrMalformed},
		{"proto late", "N\x80\x02.", ErrMalformed},
		{"proto 4", "\x80\x04N.", ErrMalformed},
		{"append to dict", "}K\x01a.", ErrMalformed},
		{"setitem on list", "]K\x01K\x02s.", ErrMalformed},
		{"append across mark", "](K\x01a.", ErrMalformed},
		{"tuple without mark", "K\x01t.", ErrMalformed},
		{"odd setitems", "}(K\x01u.", ErrMalformed},
		{"list key", "}]K\x01s.", ErrMalformed},
		{"dict key in tuple", "}(}tK\x01s.", ErrMalformed},
		{"deep list", deep, ErrMalformed},
		{"deep tuple", deepTuple, ErrMalformed},
		{"INT not decimal", "I0x10\n.", ErrMalformed},
		{"INT empty", "I\n.", ErrMalformed},
		{"LONG too long", "L" + strings.Repeat("9", maxIntDigits+1) + "L\n.", ErrMalformed},
		{"unterminated INT", "I12", ErrMalformed},
	} {
		_, err := decodePickle([]byte(c.p))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestValidPythonUTF8(t *testing.T) {
	for s, want := range map[string]bool{
		"":             true,
		"abc":          true,
		"ü✓😀":          true,
		"\xed\xa0\x80": true, // lone high surrogate (surrogatepass)
		"\xed\xbf\xbf": true,
		"\xed\xa0":     false,
		"\xff":         false,
		"\xc0\x80":     false, // overlong
	} {
		if got := validPythonUTF8([]byte(s)); got != want {
			t.Errorf("validPythonUTF8(%q) = %v", s, got)
		}
	}
}

// Large hostile pickles decode (or fail) with work linear in their size.
// The work is measured as bytes allocated, which, unlike time, a busy
// machine does not change: the usual way to go quadratic is to copy a
// growing stack or buffer again and again, and that allocates quadratic
// bytes. Sixteen times the input must allocate far less than the 256
// times a quadratic decoder would.
func TestPickleDecodeLinear(t *testing.T) {
	inputs := map[string]func(n int) string{
		"marks":         func(n int) string { return strings.Repeat("(", n) + "." },
		"appends":       func(n int) string { return "]" + strings.Repeat("K\x01a", n) + "." },
		"same key":      func(n int) string { return "}(" + strings.Repeat("K\x01K\x01", n) + "u." },
		"long INT line": func(n int) string { return "I" + strings.Repeat("1", 4*n) },
		"long GLOBAL":   func(n int) string { return "c" + strings.Repeat("x", 4*n) },
		"many tuples":   func(n int) string { return strings.Repeat("N\x85", n) + "." },
		"wide tuple":    func(n int) string { return "(" + strings.Repeat("N", n) + "t." },
		"nested then pop": func(n int) string {
			return strings.Repeat("]", zeo.MaxDepth) + strings.Repeat("a", zeo.MaxDepth-1) + strings.Repeat("]K\x01a", n) + "."
		},
		"distinct tuple keys": func(n int) string {
			var keys strings.Builder
			keys.WriteString("}(")
			for i := range n {
				fmt.Fprintf(&keys, "J%s\x85N", string(binary.LittleEndian.AppendUint32(nil, uint32(i))))
			}
			keys.WriteString("u.")
			return keys.String()
		},
	}
	allocated := func(p []byte) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		decodePickle(p)
		runtime.ReadMemStats(&after)
		return max(after.TotalAlloc-before.TotalAlloc, 1)
	}
	const n = 25000
	for name, gen := range inputs {
		small, large := allocated([]byte(gen(n))), allocated([]byte(gen(16*n)))
		if ratio := float64(large) / float64(small); ratio > 40 {
			t.Errorf("%s: 16x the input allocated %.1fx the bytes (%d vs %d): not linear", name, ratio, large, small)
		}
	}
}
