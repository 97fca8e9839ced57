package zeo

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"unicode/utf8"
)

// Pickle opcodes (Python's Lib/pickletools.py names).
const (
	opMark          = '('
	opStop          = '.'
	opPop           = '0'
	opPopMark       = '1'
	opDup           = '2'
	opFloat         = 'F'
	opInt           = 'I'
	opBinint        = 'J'
	opBinint1       = 'K'
	opLong          = 'L'
	opBinint2       = 'M'
	opNone          = 'N'
	opPersid        = 'P'
	opBinpersid     = 'Q'
	opReduce        = 'R'
	opString        = 'S'
	opBinstring     = 'T'
	opShortBinstr   = 'U'
	opUnicode       = 'V'
	opBinunicode    = 'X'
	opAppend        = 'a'
	opBuild         = 'b'
	opGlobal        = 'c'
	opDict          = 'd'
	opEmptyDict     = '}'
	opAppends       = 'e'
	opGet           = 'g'
	opBinget        = 'h'
	opInst          = 'i'
	opLongBinget    = 'j'
	opList          = 'l'
	opEmptyList     = ']'
	opObj           = 'o'
	opPut           = 'p'
	opBinput        = 'q'
	opLongBinput    = 'r'
	opSetitem       = 's'
	opTuple         = 't'
	opEmptyTuple    = ')'
	opSetitems      = 'u'
	opBinfloat      = 'G'
	opProto         = 0x80
	opNewobj        = 0x81
	opExt1          = 0x82
	opExt2          = 0x83
	opExt4          = 0x84
	opTuple1        = 0x85
	opTuple2        = 0x86
	opTuple3        = 0x87
	opNewtrue       = 0x88
	opNewfalse      = 0x89
	opLong1         = 0x8a
	opLong4         = 0x8b
	opBinbytes      = 'B'
	opShortBinbytes = 'C'
	opShortBinUni   = 0x8c
	opBinunicode8   = 0x8d
	opBinbytes8     = 0x8e
	opEmptySet      = 0x8f
	opAdditems      = 0x90
	opFrozenset     = 0x91
	opNewobjEx      = 0x92
	opStackGlobal   = 0x93
	opMemoize       = 0x94
	opFrame         = 0x95
	opBytearray8    = 0x96
	opNextBuffer    = 0x97
	opReadonlyBuf   = 0x98
)

// pickleBatch is CPython's BATCHSIZE for APPENDS and SETITEMS.
const pickleBatch = 1000

// pickleEncoder appends the protocol-3 pickle of value-model values, opcode
// for opcode what CPython's C pickler (and zodbpickle's copy of it) writes.
// og-rek's encoder cannot be used: it writes lists and dicts as
// MARK...LIST/DICT, big ints as text LONG, and has no dict order.
//
// With memo nil it is a fast-mode pickler (ZEO messages). Otherwise it is a
// normal pickler: every str, bytes, non-empty tuple, list and dict is
// memoized (BINPUT) and a repeated object is written as BINGET. Go values
// have no identity, so objects count as repeated exactly when CPython would
// share them after unpickling: the empty and one-character latin-1 strings
// and the empty bytes are cached singletons, anything else is a distinct
// object.
type pickleEncoder struct {
	memo *pickleMemo
}

type pickleMemo struct {
	n          int            // entries written
	singletons map[string]int // "s"+str or "b"+bytes -> memo index
}

// get writes BINGET for a singleton already in the memo.
func (m *pickleMemo) get(b []byte, key string) ([]byte, bool) {
	idx, ok := m.singletons[key]
	if !ok {
		return b, false
	}
	if idx < 256 {
		return append(b, opBinget, byte(idx)), true
	}
	return binary.LittleEndian.AppendUint32(append(b, opLongBinget), uint32(idx)), true
}

// put writes BINPUT for the object just written; key is non-empty for a
// singleton.
func (m *pickleMemo) put(b []byte, key string) []byte {
	idx := m.n
	m.n++
	if key != "" {
		if m.singletons == nil {
			m.singletons = make(map[string]int)
		}
		m.singletons[key] = idx
	}
	if idx < 256 {
		return append(b, opBinput, byte(idx))
	}
	return binary.LittleEndian.AppendUint32(append(b, opLongBinput), uint32(idx))
}

// strSingleton returns the memo key of a string CPython caches, or "".
func strSingleton(s string) string {
	if s == "" {
		return "s"
	}
	if r, n := utf8.DecodeRuneInString(s); n == len(s) && r < 256 {
		return "s" + s
	}
	return ""
}

func (e *pickleEncoder) value(b []byte, v any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return b, fmt.Errorf("zeo: pickle: value nested deeper than %d: %w", MaxDepth, ErrUnsupportedValue)
	}
	var err error
	switch v := v.(type) {
	case nil:
		return append(b, opNone), nil
	case bool:
		if v {
			return append(b, opNewtrue), nil
		}
		return append(b, opNewfalse), nil
	case int64:
		return appendPickleInt(b, v), nil
	case float64:
		return appendPickleFloat(b, v), nil
	case float32:
		return appendPickleFloat(b, float64(v)), nil
	case string:
		if uint64(len(v)) > math.MaxUint32 {
			return b, fmt.Errorf("zeo: pickle: str of %d bytes: %w", len(v), ErrUnsupportedValue)
		}
		var key string
		if e.memo != nil {
			var hit bool
			if key = strSingleton(v); key != "" {
				if b, hit = e.memo.get(b, key); hit {
					return b, nil
				}
			}
		}
		b = append(b, opBinunicode)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
		if e.memo != nil {
			b = e.memo.put(b, key)
		}
		return b, nil
	case []byte:
		var key string
		if e.memo != nil && len(v) == 0 {
			var hit bool
			key = "b" + string(v)
			if b, hit = e.memo.get(b, key); hit {
				return b, nil
			}
		}
		switch {
		case len(v) < 256:
			b = append(b, opShortBinbytes, byte(len(v)))
		case uint64(len(v)) <= math.MaxUint32:
			b = append(b, opBinbytes)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		default:
			return b, fmt.Errorf("zeo: pickle: bytes of %d bytes: %w", len(v), ErrUnsupportedValue)
		}
		b = append(b, v...)
		if e.memo != nil {
			b = e.memo.put(b, key)
		}
		return b, nil
	case Tuple:
		switch len(v) {
		case 0:
			return append(b, opEmptyTuple), nil
		case 1, 2, 3:
			for _, x := range v {
				if b, err = e.value(b, x, depth+1); err != nil {
					return b, err
				}
			}
			return e.put(append(b, opTuple1+byte(len(v)-1))), nil
		}
		b = append(b, opMark)
		for _, x := range v {
			if b, err = e.value(b, x, depth+1); err != nil {
				return b, err
			}
		}
		return e.put(append(b, opTuple)), nil
	case List:
		b = e.put(append(b, opEmptyList))
		switch len(v) {
		case 0:
			return b, nil
		case 1: // CPython's batch_list_exact special case
			if b, err = e.value(b, v[0], depth+1); err != nil {
				return b, err
			}
			return append(b, opAppend), nil
		}
		for i := 0; i < len(v); i += pickleBatch {
			b = append(b, opMark)
			for _, x := range v[i:min(i+pickleBatch, len(v))] {
				if b, err = e.value(b, x, depth+1); err != nil {
					return b, err
				}
			}
			b = append(b, opAppends)
		}
		return b, nil
	case Dict:
		return e.value(b, &v, depth)
	case *Dict:
		b = e.put(append(b, opEmptyDict))
		items := v.view()
		switch len(items) {
		case 0:
			return b, nil
		case 1: // CPython's batch_dict_exact special case
			if b, err = e.item(b, items[0], depth); err != nil {
				return b, err
			}
			return append(b, opSetitem), nil
		}
		// CPython's loop runs "while the previous batch was full", so a
		// dict of exactly k*1000 items ends with an empty MARK SETITEMS.
		for i := 0; ; i += pickleBatch {
			b = append(b, opMark)
			end := min(i+pickleBatch, len(items))
			for _, it := range items[i:end] {
				if b, err = e.item(b, it, depth); err != nil {
					return b, err
				}
			}
			b = append(b, opSetitems)
			if end-i < pickleBatch {
				return b, nil
			}
		}
	}
	if n, ok := toInt64(v); ok {
		return appendPickleInt(b, n), nil
	}
	if n, ok := bigInt(v); ok {
		return appendPickleLong(b, n), nil
	}
	return b, fmt.Errorf("zeo: pickle: Go type %T: %w", v, ErrUnsupportedValue)
}

// put memoizes the container just written, in normal mode.
func (e *pickleEncoder) put(b []byte) []byte {
	if e.memo == nil {
		return b
	}
	return e.memo.put(b, "")
}

func (e *pickleEncoder) item(b []byte, it Item, depth int) ([]byte, error) {
	b, err := e.value(b, it.Key, depth+1)
	if err != nil {
		return b, err
	}
	return e.value(b, it.Value, depth+1)
}

// appendPickleInt follows CPython save_long: BININT1/BININT2 for small
// non-negative ints, BININT for the int32 range, LONG1 beyond.
func appendPickleInt(b []byte, n int64) []byte {
	switch {
	case n >= 0 && n < 1<<8:
		return append(b, opBinint1, byte(n))
	case n >= 0 && n < 1<<16:
		return append(b, opBinint2, byte(n), byte(n>>8))
	case n >= math.MinInt32 && n <= math.MaxInt32:
		b = append(b, opBinint)
		return binary.LittleEndian.AppendUint32(b, uint32(n))
	}
	// LONG1: little-endian two's complement in (nbits>>3)+1 bytes, where
	// nbits is the bit length of |n|, minus one byte for negative numbers
	// whose top byte is pure sign extension (CPython encode_long).
	abs := uint64(n)
	if n < 0 {
		abs = -abs
	}
	nbytes := bits.Len64(abs)>>3 + 1
	var buf [9]byte
	for i := 0; i < nbytes; i++ {
		buf[i] = byte(n >> (8 * uint(i))) // arithmetic shift sign-extends
	}
	if n < 0 && nbytes > 1 && buf[nbytes-1] == 0xff && buf[nbytes-2]&0x80 != 0 {
		nbytes--
	}
	b = append(b, opLong1, byte(nbytes))
	return append(b, buf[:nbytes]...)
}

// appendPickleLong writes an arbitrary integer like CPython save_long.
func appendPickleLong(b []byte, n *big.Int) []byte {
	if n.IsInt64() {
		return appendPickleInt(b, n.Int64())
	}
	nbytes := n.BitLen()>>3 + 1
	// Two's complement: for negative n, 256**nbytes + n.
	x := new(big.Int).Set(n)
	if n.Sign() < 0 {
		x.Add(x, new(big.Int).Lsh(big.NewInt(1), uint(8*nbytes)))
	}
	be := x.FillBytes(make([]byte, nbytes))
	le := make([]byte, nbytes)
	for i, c := range be {
		le[nbytes-1-i] = c
	}
	if n.Sign() < 0 && nbytes > 1 && le[nbytes-1] == 0xff && le[nbytes-2]&0x80 != 0 {
		le = le[:nbytes-1]
	}
	if len(le) < 256 {
		b = append(b, opLong1, byte(len(le)))
	} else {
		b = append(b, opLong4)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(le)))
	}
	return append(b, le...)
}

func appendPickleFloat(b []byte, f float64) []byte {
	b = append(b, opBinfloat)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}
