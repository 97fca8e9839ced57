package zrs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"

	"github.com/zrs-go/zrs/wire/zeo"
)

// Pickle opcodes. The encoder writes only the protocol-1 subset that
// CPython's fast-mode pickler uses for zc.zrs messages; the decoder also
// accepts the data opcodes a Python 2 primary or a newer protocol would use.
const (
	opMark            = '('
	opStop            = '.'
	opNone            = 'N'
	opInt             = 'I'
	opLong            = 'L'
	opBinint          = 'J'
	opBinint1         = 'K'
	opBinint2         = 'M'
	opBinfloat        = 'G'
	opBinunicode      = 'X'
	opShortBinunicode = 0x8c
	opBinstring       = 'T'
	opShortBinstring  = 'U'
	opBinbytes        = 'B'
	opShortBinbytes   = 'C'
	opGlobal          = 'c'
	opReduce          = 'R'
	opEmptyTuple      = ')'
	opTuple           = 't'
	opTuple1          = 0x85
	opTuple2          = 0x86
	opTuple3          = 0x87
	opEmptyList       = ']'
	opAppend          = 'a'
	opAppends         = 'e'
	opList            = 'l'
	opEmptyDict       = '}'
	opSetitem         = 's'
	opSetitems        = 'u'
	opDict            = 'd'
	opProto           = 0x80
	opNewtrue         = 0x88
	opNewfalse        = 0x89
	opLong1           = 0x8a
	opLong4           = 0x8b
)

// batchSize is CPython's BATCHSIZE for APPENDS and SETITEMS.
const batchSize = 1000

// maxIntDigits is CPython's default limit on int<->decimal string
// conversion (sys.int_info.default_max_str_digits): a Python 3 pickler
// cannot write a protocol-1 LONG with more digits, and we refuse to parse
// one (big.Int parsing is superlinear).
const maxIntDigits = 4300

// Fixed pickle fragments of CPython's protocol-1 reduction of bytes.
const (
	codecsEncodeGlobal = "c_codecs\nencode\n"
	emptyBytesPickle   = "c__builtin__\nbytes\n)R"
	latin1Arg          = "X\x06\x00\x00\x00latin1"
)

// appendPickleValue appends the protocol-1 fast-mode pickle of v (without
// STOP) as CPython 3's C pickler writes it:
//
//	None         N
//	bool         I01\n / I00\n
//	int          BININT1, BININT2, BININT, else LONG "L<decimal>L\n"
//	float        BINFLOAT
//	str          BINUNICODE
//	bytes        _codecs.encode(latin-1 str, 'latin1') REDUCE; b'' is
//	             __builtin__.bytes() REDUCE
//	tuple        EMPTY_TUPLE, or MARK items TUPLE
//	list         EMPTY_LIST, then item APPEND for one item, else batches
//	             of 1000 as MARK items APPENDS
//	dict         EMPTY_DICT, then k v SETITEM for one item, else batches of
//	             1000 as MARK k v ... SETITEMS (CPython writes one more,
//	             empty batch when the size is a multiple of 1000)
func appendPickleValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > zeo.MaxDepth {
		return b, fmt.Errorf("zrs: value nested deeper than %d: %w", zeo.MaxDepth, ErrUnsupported)
	}
	switch v := v.(type) {
	case nil:
		return append(b, opNone), nil
	case bool:
		if v {
			return append(b, "I01\n"...), nil
		}
		return append(b, "I00\n"...), nil
	case int64:
		return appendPickleInt(b, v), nil
	case int:
		return appendPickleInt(b, int64(v)), nil
	case int32:
		return appendPickleInt(b, int64(v)), nil
	case uint32:
		return appendPickleInt(b, int64(v)), nil
	case uint64:
		if v <= math.MaxInt64 {
			return appendPickleInt(b, int64(v)), nil
		}
		return appendPickleBigInt(b, new(big.Int).SetUint64(v))
	case *big.Int:
		if v == nil {
			return b, fmt.Errorf("zrs: nil *big.Int: %w", ErrUnsupported)
		}
		if v.IsInt64() {
			return appendPickleInt(b, v.Int64()), nil
		}
		return appendPickleBigInt(b, v)
	case float64:
		b = append(b, opBinfloat)
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v)), nil
	case float32:
		b = append(b, opBinfloat)
		return binary.BigEndian.AppendUint64(b, math.Float64bits(float64(v))), nil
	case string:
		return appendBinunicode(b, v), nil
	case []byte:
		return appendPickleBytes(b, v), nil
	case zeo.Tuple:
		if len(v) == 0 {
			return append(b, opEmptyTuple), nil
		}
		b = append(b, opMark)
		for _, e := range v {
			var err error
			if b, err = appendPickleValue(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, opTuple), nil
	case zeo.List:
		return appendPickleList(b, v, depth)
	case *zeo.Dict:
		return appendPickleDict(b, v, depth)
	case zeo.Dict:
		return appendPickleDict(b, &v, depth)
	}
	return b, fmt.Errorf("zrs: cannot pickle a Go %T: %w", v, ErrUnsupported)
}

func appendPickleInt(b []byte, n int64) []byte {
	switch {
	case n >= 0 && n <= 0xff:
		return append(b, opBinint1, byte(n))
	case n >= 0 && n <= 0xffff:
		return append(b, opBinint2, byte(n), byte(n>>8))
	case n >= math.MinInt32 && n <= math.MaxInt32:
		b = append(b, opBinint)
		return binary.LittleEndian.AppendUint32(b, uint32(int32(n)))
	}
	b = append(b, opLong)
	b = strconv.AppendInt(b, n, 10)
	return append(b, 'L', '\n')
}

func appendPickleBigInt(b []byte, n *big.Int) ([]byte, error) {
	s := n.Text(10)
	if digits := len(s) - btoi(n.Sign() < 0); digits > maxIntDigits {
		return b, fmt.Errorf("zrs: integer of %d decimal digits exceeds Python's limit of %d: %w", digits, maxIntDigits, ErrUnsupported)
	}
	b = append(b, opLong)
	b = append(b, s...)
	return append(b, 'L', '\n'), nil
}

func btoi(c bool) int {
	if c {
		return 1
	}
	return 0
}

// appendBinunicode writes s as BINUNICODE. Go strings hold the UTF-8 bytes
// Python writes (with surrogatepass for lone surrogates), so they are
// copied unchanged.
func appendBinunicode(b []byte, s string) []byte {
	b = append(b, opBinunicode)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendPickleBytes writes CPython's protocol<3 reduction of bytes.
func appendPickleBytes(b, v []byte) []byte {
	if len(v) == 0 {
		return append(b, emptyBytesPickle...)
	}
	b = append(b, codecsEncodeGlobal...)
	b = append(b, opMark, opBinunicode)
	n := len(v)
	for _, c := range v {
		if c >= 0x80 {
			n++ // latin-1 0x80..0xff takes two UTF-8 bytes
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for _, c := range v {
		if c < 0x80 {
			b = append(b, c)
		} else {
			b = append(b, 0xc0|c>>6, 0x80|c&0x3f)
		}
	}
	b = append(b, latin1Arg...)
	return append(b, opTuple, opReduce)
}

func appendPickleList(b []byte, l zeo.List, depth int) ([]byte, error) {
	b = append(b, opEmptyList)
	var err error
	if len(l) == 1 {
		if b, err = appendPickleValue(b, l[0], depth+1); err != nil {
			return b, err
		}
		return append(b, opAppend), nil
	}
	for i := 0; i < len(l); i += batchSize {
		b = append(b, opMark)
		for _, e := range l[i:min(i+batchSize, len(l))] {
			if b, err = appendPickleValue(b, e, depth+1); err != nil {
				return b, err
			}
		}
		b = append(b, opAppends)
	}
	return b, nil
}

func appendPickleDict(b []byte, d *zeo.Dict, depth int) ([]byte, error) {
	b = append(b, opEmptyDict)
	n := d.Len()
	if n == 0 {
		return b, nil
	}
	var err error
	if n == 1 {
		for k, v := range d.All() {
			if b, err = appendPickleValue(b, k, depth+1); err != nil {
				return b, err
			}
			if b, err = appendPickleValue(b, v, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, opSetitem), nil
	}
	i := 0
	b = append(b, opMark)
	for k, v := range d.All() {
		if b, err = appendPickleValue(b, k, depth+1); err != nil {
			return b, err
		}
		if b, err = appendPickleValue(b, v, depth+1); err != nil {
			return b, err
		}
		if i++; i == batchSize {
			b = append(b, opSetitems, opMark)
			i = 0
		}
	}
	// CPython's batch loop ends only after a batch shorter than BATCHSIZE,
	// so a multiple of 1000 items ends with an empty MARK SETITEMS.
	return append(b, opSetitems), nil
}

// pyGlobal is a global the decoder admits, on the stack until REDUCE.
type pyGlobal int

const (
	globalCodecsEncode pyGlobal = iota + 1
	globalBytes
)

func (g pyGlobal) String() string {
	if g == globalCodecsEncode {
		return "_codecs.encode"
	}
	return "bytes"
}

// legacyStr is a Python 2 str (BINSTRING, SHORT_BINSTRING), which a
// Python 2 primary writes for tids, oids, user, description and status. It
// is accepted wherever bytes are expected, and where str is expected when
// it is ASCII; inside an extension dict it becomes a str when it is ASCII
// and bytes otherwise (zodbpickle's encoding='ASCII', errors='bytes').
type legacyStr string

// pickleDecoder runs the restricted pickle machine over one message.
type pickleDecoder struct {
	p      []byte
	stack  []any
	depths []int // nesting depth of each stack value (0 for scalars)
	marks  []int
}

// decodePickle decodes one restricted zrs2.0 pickle. Every value it
// builds is backed by at least one input byte and containers are
// referenced once (there is no memo), so time and memory are linear in
// len(p).
func decodePickle(p []byte) (any, error) {
	// A zc.zrs message needs a stack of about a dozen values.
	var stack [16]any
	var depths [16]int
	var marks [8]int
	d := pickleDecoder{p: p, stack: stack[:0], depths: depths[:0], marks: marks[:0]}
	return d.run()
}

func (d *pickleDecoder) push(v any, depth int) error {
	if depth > zeo.MaxDepth {
		return fmt.Errorf("containers nested deeper than %d: %w", zeo.MaxDepth, ErrMalformed)
	}
	d.stack = append(d.stack, v)
	d.depths = append(d.depths, depth)
	return nil
}

// popMark pops the values above the topmost mark.
func (d *pickleDecoder) popMark(op byte, at int) ([]any, int, error) {
	if len(d.marks) == 0 {
		return nil, 0, fmt.Errorf("%s at offset %d without MARK: %w", opName(op), at, ErrMalformed)
	}
	m := d.marks[len(d.marks)-1]
	d.marks = d.marks[:len(d.marks)-1]
	items := d.stack[m:]
	depth := 0
	for i, v := range items {
		if _, ok := v.(pyGlobal); ok {
			return nil, 0, fmt.Errorf("global %s used as a value at offset %d: %w", v, at, ErrNotAllowed)
		}
		depth = max(depth, d.depths[m+i])
	}
	d.stack = d.stack[:m]
	d.depths = d.depths[:m]
	return items, depth, nil
}

// pop pops n values (no mark may be above them).
func (d *pickleDecoder) pop(n int, op byte, at int) ([]any, int, error) {
	base := len(d.stack) - n
	if base < 0 || (len(d.marks) > 0 && d.marks[len(d.marks)-1] > base) {
		return nil, 0, fmt.Errorf("%s at offset %d: stack underflow: %w", opName(op), at, ErrMalformed)
	}
	items := d.stack[base:]
	depth := 0
	for i, v := range items {
		if _, ok := v.(pyGlobal); ok && op != opReduce {
			return nil, 0, fmt.Errorf("global %s used as a value at offset %d: %w", v, at, ErrNotAllowed)
		}
		depth = max(depth, d.depths[base+i])
	}
	d.stack = d.stack[:base]
	d.depths = d.depths[:base]
	return items, depth, nil
}

// top returns the index of the stack value a mutating opcode (APPEND,
// SETITEM...) modifies once its operands are popped: the topmost one,
// which must lie within the current mark frame, as in Python 3.
//
// Slices returned by pop and popMark alias the stack's backing array and
// must be consumed before the next push.
func (d *pickleDecoder) top(op byte, at int) (int, error) {
	i := len(d.stack) - 1
	if i < 0 || (len(d.marks) > 0 && d.marks[len(d.marks)-1] > i) {
		return 0, fmt.Errorf("%s at offset %d: stack underflow: %w", opName(op), at, ErrMalformed)
	}
	return i, nil
}

func (d *pickleDecoder) arg(at, n int) ([]byte, error) {
	if n < 0 || n > len(d.p)-at-1 {
		return nil, fmt.Errorf("%s at offset %d: truncated argument: %w", opName(d.p[at]), at, ErrMalformed)
	}
	return d.p[at+1 : at+1+n], nil
}

// lenArg reads a 4-byte little-endian length and the data it announces.
func (d *pickleDecoder) lenArg(at int) ([]byte, int, error) {
	h, err := d.arg(at, 4)
	if err != nil {
		return nil, 0, err
	}
	n := binary.LittleEndian.Uint32(h)
	if uint64(n) > uint64(len(d.p)-at-5) {
		return nil, 0, fmt.Errorf("%s at offset %d: length %d exceeds the %d bytes left: %w", opName(d.p[at]), at, n, len(d.p)-at-5, ErrMalformed)
	}
	return d.p[at+5 : at+5+int(n)], 5 + int(n), nil
}

// line reads a newline-terminated text argument.
func (d *pickleDecoder) line(at int) ([]byte, int, error) {
	i := bytes.IndexByte(d.p[at+1:], '\n')
	if i < 0 {
		return nil, 0, fmt.Errorf("%s at offset %d: unterminated line: %w", opName(d.p[at]), at, ErrMalformed)
	}
	return d.p[at+1 : at+1+i], i + 2, nil
}

func (d *pickleDecoder) run() (any, error) {
	for at := 0; at < len(d.p); {
		if d.p[at] == opStop {
			return d.stop(at)
		}
		size, err := d.step(at)
		if err != nil {
			return nil, err
		}
		at += size
	}
	return nil, fmt.Errorf("pickle has no STOP opcode: %w", ErrMalformed)
}

func (d *pickleDecoder) stop(at int) (any, error) {
	if at != len(d.p)-1 {
		return nil, fmt.Errorf("%d bytes after STOP at offset %d: %w", len(d.p)-at-1, at, ErrMalformed)
	}
	if len(d.stack) != 1 || len(d.marks) != 0 {
		return nil, fmt.Errorf("STOP with %d values and %d marks on the stack: %w", len(d.stack), len(d.marks), ErrMalformed)
	}
	if g, ok := d.stack[0].(pyGlobal); ok {
		return nil, fmt.Errorf("global %s used as a value: %w", g, ErrNotAllowed)
	}
	return d.stack[0], nil
}

// step executes the opcode at offset at and returns the number of bytes
// it occupies with its argument.
func (d *pickleDecoder) step(at int) (int, error) {
	op := d.p[at]
	switch op {
	case opProto:
		a, err := d.arg(at, 1)
		if err != nil {
			return 0, err
		}
		if at != 0 || a[0] > 3 {
			return 0, fmt.Errorf("PROTO %d at offset %d: %w", a[0], at, ErrMalformed)
		}
		return 2, nil
	case opMark:
		d.marks = append(d.marks, len(d.stack))
		return 1, nil
	case opNone:
		return 1, d.push(nil, 0)
	case opNewtrue:
		return 1, d.push(true, 0)
	case opNewfalse:
		return 1, d.push(false, 0)
	case opInt, opLong:
		ln, size, err := d.line(at)
		if err != nil {
			return 0, err
		}
		v, err := parseIntLine(ln, op == opLong)
		if err != nil {
			return 0, fmt.Errorf("%s at offset %d: %w", opName(op), at, err)
		}
		return size, d.push(v, 0)
	case opBinint1:
		a, err := d.arg(at, 1)
		if err != nil {
			return 0, err
		}
		return 2, d.push(int64(a[0]), 0)
	case opBinint2:
		a, err := d.arg(at, 2)
		if err != nil {
			return 0, err
		}
		return 3, d.push(int64(binary.LittleEndian.Uint16(a)), 0)
	case opBinint:
		a, err := d.arg(at, 4)
		if err != nil {
			return 0, err
		}
		return 5, d.push(int64(int32(binary.LittleEndian.Uint32(a))), 0)
	case opLong1, opLong4:
		a, size, err := d.sizedArg(at, op == opLong1)
		if err != nil {
			return 0, err
		}
		return size, d.push(decodeLongLE(a), 0)
	case opBinfloat:
		a, err := d.arg(at, 8)
		if err != nil {
			return 0, err
		}
		return 9, d.push(math.Float64frombits(binary.BigEndian.Uint64(a)), 0)
	case opBinunicode, opShortBinunicode:
		a, size, err := d.sizedArg(at, op == opShortBinunicode)
		if err != nil {
			return 0, err
		}
		if string(a) == "latin1" {
			// The encoding argument of every bytes value: no allocation.
			return size, d.push("latin1", 0)
		}
		if !validPythonUTF8(a) {
			return 0, fmt.Errorf("%s at offset %d: invalid UTF-8: %w", opName(op), at, ErrMalformed)
		}
		return size, d.push(string(a), 0)
	case opBinstring, opShortBinstring:
		a, size, err := d.sizedArg(at, op == opShortBinstring)
		if err != nil {
			return 0, err
		}
		return size, d.push(legacyStr(a), 0)
	case opBinbytes, opShortBinbytes:
		a, size, err := d.sizedArg(at, op == opShortBinbytes)
		if err != nil {
			return 0, err
		}
		return size, d.push(bytes.Clone(a), 0)
	case opGlobal:
		return d.global(at)
	case opReduce:
		items, _, err := d.pop(2, op, at)
		if err != nil {
			return 0, err
		}
		v, err := reduce(items[0], items[1])
		if err != nil {
			return 0, fmt.Errorf("REDUCE at offset %d: %w", at, err)
		}
		return 1, d.push(v, 0)
	case opEmptyTuple:
		return 1, d.push(zeo.Tuple{}, 1)
	case opTuple, opTuple1, opTuple2, opTuple3, opList:
		var items []any
		var depth int
		var err error
		if op == opTuple || op == opList {
			items, depth, err = d.popMark(op, at)
		} else {
			items, depth, err = d.pop(int(op-opTuple1)+1, op, at)
		}
		if err != nil {
			return 0, err
		}
		if op == opList {
			return 1, d.push(zeo.List(cloneItems(items)), depth+1)
		}
		return 1, d.push(zeo.Tuple(cloneItems(items)), depth+1)
	case opEmptyList:
		return 1, d.push(zeo.List{}, 1)
	case opEmptyDict:
		return 1, d.push(new(zeo.Dict), 1)
	case opDict:
		items, depth, err := d.popMark(op, at)
		if err != nil {
			return 0, err
		}
		dict := new(zeo.Dict)
		if err := setItems(dict, items, op, at); err != nil {
			return 0, err
		}
		return 1, d.push(dict, depth+1)
	case opAppend, opAppends, opSetitem, opSetitems:
		return 1, d.mutate(op, at)
	}
	if isKnownOpcode(op) {
		return 0, fmt.Errorf("opcode %s at offset %d: %w", opName(op), at, ErrNotAllowed)
	}
	return 0, fmt.Errorf("unknown opcode %#02x at offset %d: %w", op, at, ErrMalformed)
}

// global admits _codecs.encode and bytes.
func (d *pickleDecoder) global(at int) (int, error) {
	mod, size, err := d.line(at)
	if err != nil {
		return 0, err
	}
	i := bytes.IndexByte(d.p[at+size:], '\n')
	if i < 0 {
		return 0, fmt.Errorf("GLOBAL at offset %d: unterminated name: %w", at, ErrMalformed)
	}
	name := d.p[at+size : at+size+i]
	size += i + 1
	var g pyGlobal
	switch {
	case string(mod) == "_codecs" && string(name) == "encode":
		g = globalCodecsEncode
	case (string(mod) == "__builtin__" || string(mod) == "builtins") && string(name) == "bytes":
		g = globalBytes
	default:
		return 0, fmt.Errorf("GLOBAL %.64q %.64q at offset %d: %w", mod, name, at, ErrNotAllowed)
	}
	return size, d.push(g, 0)
}

// mutate runs APPEND, APPENDS, SETITEM and SETITEMS.
func (d *pickleDecoder) mutate(op byte, at int) error {
	var items []any
	var depth int
	var err error
	switch op {
	case opAppend:
		items, depth, err = d.pop(1, op, at)
	case opSetitem:
		items, depth, err = d.pop(2, op, at)
	default:
		items, depth, err = d.popMark(op, at)
	}
	if err != nil {
		return err
	}
	i, err := d.top(op, at)
	if err != nil {
		return err
	}
	switch c := d.stack[i].(type) {
	case zeo.List:
		if op != opAppend && op != opAppends {
			return fmt.Errorf("%s at offset %d on a list: %w", opName(op), at, ErrMalformed)
		}
		d.stack[i] = append(c, items...)
	case *zeo.Dict:
		if op != opSetitem && op != opSetitems {
			return fmt.Errorf("%s at offset %d on a dict: %w", opName(op), at, ErrMalformed)
		}
		if err := setItems(c, items, op, at); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s at offset %d on a %s: %w", opName(op), at, typeName(c), ErrMalformed)
	}
	d.depths[i] = max(d.depths[i], depth+1)
	if d.depths[i] > zeo.MaxDepth {
		return fmt.Errorf("containers nested deeper than %d: %w", zeo.MaxDepth, ErrMalformed)
	}
	return nil
}

// sizedArg reads a length (1 byte if short, else 4 bytes little-endian)
// and the data it announces.
func (d *pickleDecoder) sizedArg(at int, short bool) ([]byte, int, error) {
	if !short {
		return d.lenArg(at)
	}
	n, err := d.arg(at, 1)
	if err != nil {
		return nil, 0, err
	}
	a, err := d.arg(at, 1+int(n[0]))
	if err != nil {
		return nil, 0, err
	}
	return a[1:], 2 + int(n[0]), nil
}

// cloneItems copies popped stack values, whose backing array the stack
// reuses.
func cloneItems(items []any) []any {
	out := make([]any, len(items))
	copy(out, items)
	return out
}

// setItems sets flattened key/value pairs into d.
func setItems(d *zeo.Dict, items []any, op byte, at int) error {
	if len(items)%2 != 0 {
		return fmt.Errorf("%s at offset %d with an odd number (%d) of keys and values: %w", opName(op), at, len(items), ErrMalformed)
	}
	for i := 0; i < len(items); i += 2 {
		k, err := normalizeKey(items[i], 0)
		if err != nil {
			return fmt.Errorf("%s at offset %d: %w", opName(op), at, err)
		}
		d.Set(k, items[i+1])
	}
	return nil
}

// normalizeKey checks that Python can hash a dict key (zeo.Dict.Set
// panics on one it cannot) and replaces Python 2 strs in it, as Python 3
// unpickling does.
func normalizeKey(k any, depth int) (any, error) {
	if depth > zeo.MaxDepth {
		return nil, fmt.Errorf("dict key nested deeper than %d: %w", zeo.MaxDepth, ErrMalformed)
	}
	switch k := k.(type) {
	case nil, bool, int64, *big.Int, float64, string, []byte:
		return k, nil
	case legacyStr:
		return normalizeLegacy(k), nil
	case zeo.Tuple:
		for i, e := range k {
			n, err := normalizeKey(e, depth+1)
			if err != nil {
				return nil, err
			}
			k[i] = n
		}
		return k, nil
	}
	return nil, fmt.Errorf("unhashable dict key of type %s: %w", typeName(k), ErrMalformed)
}

// reduce applies one of the admitted globals.
func reduce(callable, args any) ([]byte, error) {
	g, ok := callable.(pyGlobal)
	if !ok {
		return nil, fmt.Errorf("callable is a %s, not an admitted global: %w", typeName(callable), ErrNotAllowed)
	}
	t, ok := args.(zeo.Tuple)
	if !ok {
		return nil, fmt.Errorf("%s arguments are a %s, not a tuple: %w", g, typeName(args), ErrMalformed)
	}
	switch g {
	case globalBytes:
		if len(t) != 0 {
			return nil, fmt.Errorf("bytes called with %d arguments, want none: %w", len(t), ErrNotAllowed)
		}
		return []byte{}, nil
	default:
		if len(t) != 2 {
			return nil, fmt.Errorf("_codecs.encode called with %d arguments, want 2: %w", len(t), ErrNotAllowed)
		}
		s, ok1 := t[0].(string)
		enc, ok2 := t[1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("_codecs.encode called with (%s, %s), want (str, str): %w", typeName(t[0]), typeName(t[1]), ErrMalformed)
		}
		if enc != "latin1" && enc != "latin-1" {
			return nil, fmt.Errorf("_codecs.encode with encoding %.32q, want 'latin1': %w", enc, ErrNotAllowed)
		}
		out := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 0xff {
				return nil, fmt.Errorf("_codecs.encode: character U+%04X is not latin-1: %w", r, ErrMalformed)
			}
			out = append(out, byte(r))
		}
		return out, nil
	}
}

// validPythonUTF8 reports whether b is what Python's UTF-8 codec with
// surrogatepass accepts: UTF-8 where encoded surrogates are allowed.
func validPythonUTF8(b []byte) bool {
	for len(b) > 0 {
		if b[0] < utf8.RuneSelf {
			b = b[1:]
			continue
		}
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			// Go rejects encoded surrogates (ED A0..BF xx); Python's
			// surrogatepass writes them for lone surrogates.
			if len(b) >= 3 && b[0] == 0xed && b[1]&0xe0 == 0xa0 && b[2]&0xc0 == 0x80 {
				b = b[3:]
				continue
			}
			return false
		}
		b = b[n:]
	}
	return true
}

// parseIntLine parses the argument of INT ("01"/"00" are True/False) or
// LONG (with an optional trailing L): an optional sign and decimal digits.
func parseIntLine(s []byte, long bool) (any, error) {
	if !long {
		switch string(s) {
		case "01":
			return true, nil
		case "00":
			return false, nil
		}
	} else if len(s) > 0 && s[len(s)-1] == 'L' {
		s = s[:len(s)-1]
	}
	digits := s
	if len(digits) > 0 && (digits[0] == '-' || digits[0] == '+') {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return nil, fmt.Errorf("empty integer: %w", ErrMalformed)
	}
	if len(digits) > maxIntDigits {
		return nil, fmt.Errorf("integer of %d digits exceeds %d: %w", len(digits), maxIntDigits, ErrMalformed)
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("integer %.40q is not decimal: %w", s, ErrMalformed)
		}
	}
	if n, err := strconv.ParseInt(string(s), 10, 64); err == nil {
		return n, nil
	}
	n, ok := new(big.Int).SetString(string(s), 10)
	if !ok {
		return nil, fmt.Errorf("integer %.40q is not decimal: %w", s, ErrMalformed)
	}
	return n, nil
}

// decodeLongLE decodes LONG1/LONG4 data: a little-endian two's complement
// integer.
func decodeLongLE(a []byte) any {
	if len(a) == 0 {
		return int64(0)
	}
	be := make([]byte, len(a))
	for i, c := range a {
		be[len(a)-1-i] = c
	}
	n := new(big.Int).SetBytes(be)
	if a[len(a)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(a))))
	}
	if n.IsInt64() {
		return n.Int64()
	}
	return n
}

// normalizeLegacy turns a Python 2 str inside an extension dict into what
// a Python 3 ZODB sees: str when ASCII, else bytes.
func normalizeLegacy(s legacyStr) any {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return []byte(s)
		}
	}
	return string(s)
}

// normalizeValue replaces Python 2 strs in an extension value, in place
// for containers (dict keys were normalised when set). Each container is
// visited once.
func normalizeValue(v any) any {
	switch v := v.(type) {
	case legacyStr:
		return normalizeLegacy(v)
	case zeo.Tuple:
		for i, e := range v {
			v[i] = normalizeValue(e)
		}
	case zeo.List:
		for i, e := range v {
			v[i] = normalizeValue(e)
		}
	case *zeo.Dict:
		for k, e := range v.All() {
			if s, ok := e.(legacyStr); ok {
				v.Set(k, normalizeLegacy(s))
			} else {
				normalizeValue(e)
			}
		}
	}
	return v
}

// typeName names the Python type of a decoded value for messages.
func typeName(v any) string {
	switch v.(type) {
	case legacyStr:
		return "str (Python 2)"
	case pyGlobal:
		return "global"
	}
	return zeo.TypeName(v)
}

// isKnownOpcode reports opcodes of pickle protocols 0-5 that the decoder
// refuses (as opposed to bytes that are no opcode at all).
func isKnownOpcode(op byte) bool {
	switch op {
	case 'P', 'Q', 'b', 'i', 'o', 0x81, 0x92, 0x82, 0x83, 0x84, 'g', 'h', 'j',
		'p', 'q', 'r', '2', '0', '1', 'F', 'S', 'V', 0x8d, 0x8e, 0x8f, 0x90,
		0x91, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98:
		return true
	}
	return false
}

// opName names an opcode for error messages.
func opName(op byte) string {
	names := map[byte]string{
		opMark: "MARK", opStop: "STOP", opNone: "NONE", opInt: "INT", opLong: "LONG",
		opBinint: "BININT", opBinint1: "BININT1", opBinint2: "BININT2",
		opBinfloat: "BINFLOAT", opBinunicode: "BINUNICODE", opShortBinunicode: "SHORT_BINUNICODE",
		opBinstring: "BINSTRING", opShortBinstring: "SHORT_BINSTRING", opBinbytes: "BINBYTES",
		opShortBinbytes: "SHORT_BINBYTES", opGlobal: "GLOBAL", opReduce: "REDUCE",
		opEmptyTuple: "EMPTY_TUPLE", opTuple: "TUPLE", opTuple1: "TUPLE1", opTuple2: "TUPLE2",
		opTuple3: "TUPLE3", opEmptyList: "EMPTY_LIST", opAppend: "APPEND", opAppends: "APPENDS",
		opList: "LIST", opEmptyDict: "EMPTY_DICT", opSetitem: "SETITEM", opSetitems: "SETITEMS",
		opDict: "DICT", opProto: "PROTO", opNewtrue: "NEWTRUE", opNewfalse: "NEWFALSE",
		opLong1: "LONG1", opLong4: "LONG4",
		'P': "PERSID", 'Q': "BINPERSID", 'b': "BUILD", 'i': "INST", 'o': "OBJ",
		0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
		'g': "GET", 'h': "BINGET", 'j': "LONG_BINGET", 'p': "PUT", 'q': "BINPUT",
		'r': "LONG_BINPUT", '2': "DUP", '0': "POP", '1': "POP_MARK", 'F': "FLOAT",
		'S': "STRING", 'V': "UNICODE", 0x8d: "BINUNICODE8", 0x8e: "BINBYTES8",
		0x8f: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET", 0x93: "STACK_GLOBAL",
		0x94: "MEMOIZE", 0x95: "FRAME", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER",
		0x98: "READONLY_BUFFER",
	}
	if n, ok := names[op]; ok {
		return n
	}
	return fmt.Sprintf("%#02x", op)
}
