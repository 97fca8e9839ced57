package zeo

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/big"

	ogórek "github.com/kisielk/og-rek"
)

// Pickle decoding is done by og-rek, behind a linear pre-pass (preparePickle)
// that validates the opcode stream and rewrites the few opcodes whose og-rek
// semantics do not fit:
//
//   - Dicts. og-rek builds Go maps, losing Python's insertion order, which
//     the protocol needs (replies such as get_info must re-encode
//     byte-for-byte, transaction extensions keep their order). Each dict
//     opcode is turned into list operations whose elements are produced by
//     og-rek's persistent-load hook, so that og-rek hands back a list
//     tagged as a dict holding the key/value pairs in stream order:
//
//	EMPTY_DICT            -> NONE BINPERSID                 new tagged list
//	k v SETITEM           -> k v TUPLE2 BINPERSID APPEND    append one pair
//	MARK k v ... SETITEMS -> MARK k v ... LIST BINPERSID APPEND
//	MARK k v ... DICT     -> MARK k v ... LIST BINPERSID BINPERSID
//
//     The persistent ids seen by the hook can only come from this rewrite,
//     since real PERSID/BINPERSID opcodes are rejected, so the tags cannot
//     be forged by a peer.
//   - LONG1 and LONG4. og-rek v1.3.0 reads LONG1's length byte as signed
//     (longs of 128 to 255 bytes fail), decodes in quadratic time and has
//     no LONG4; LONG1 n data becomes SHORT_BINBYTES n data BINPERSID (LONG4:
//     BINBYTES) and the hook decodes the bytes.
//
//   - BINGET and LONG_BINGET. Memo reads pass through the hook as well,
//     which lets strings, bytes, numbers and tuples be shared but refuses a
//     shared list or dict: og-rek's lists are Go slices, so appending to a
//     shared one copies it, and a small hostile pickle could make og-rek
//     copy and retain quadratic amounts of memory. Python's non-fast
//     pickler (ZODB's extension pickles) shares strings via BINGET, never
//     containers unless the same container object appears twice; ZEO's
//     fast-mode pickler writes no memo opcodes at all.
//
// The pre-pass also rejects what a ZEO message never contains: globals and
// object construction (the Python server would refuse them via its
// find_global), persistent ids, protocol-0 text opcodes (including the text
// memo opcodes GET and PUT), DUP and POP. Lengths of all data-carrying
// opcodes are checked against the payload before og-rek sees them.

// dictTag marks the first element of a list that stands for a dict.
type dictTag struct{}

// dictItems is a batch of flattened key/value pairs for a tagged list.
type dictItems []any

// preparePickle validates p and returns the stream to give og-rek: p itself
// when nothing needs rewriting, else a rewritten copy.
func preparePickle(p []byte) ([]byte, error) {
	var out []byte // nil until the first rewrite
	rewrite := func(i int, repl ...byte) {
		if out == nil {
			out = make([]byte, i, len(p)+len(p)/4+8)
			copy(out, p[:i])
		}
		out = append(out, repl...)
	}
	for i := 0; i < len(p); {
		op := p[i]
		argLen := 0 // bytes of argument following the opcode
		switch op {
		case opStop:
			if i != len(p)-1 {
				return nil, fmt.Errorf("%d bytes after STOP at offset %d: %w", len(p)-i-1, i, ErrMalformed)
			}
			if out != nil {
				out = append(out, op)
				return out, nil
			}
			return p, nil

		case opMark, opNone, opNewtrue, opNewfalse, opEmptyTuple, opTuple,
			opTuple1, opTuple2, opTuple3, opEmptyList, opAppend, opAppends,
			opList, opMemoize:
			// no argument

		case opEmptyDict:
			rewrite(i, opNone, opBinpersid)
			i++
			continue
		case opSetitem:
			rewrite(i, opTuple2, opBinpersid, opAppend)
			i++
			continue
		case opSetitems:
			rewrite(i, opList, opBinpersid, opAppend)
			i++
			continue
		case opDict:
			rewrite(i, opList, opBinpersid, opBinpersid)
			i++
			continue

		case opProto, opBinint1, opBinput:
			argLen = 1
		case opBinint2:
			argLen = 2
		case opBinint, opLongBinput:
			argLen = 4
		case opBinfloat, opFrame:
			argLen = 8

		case opShortBinbytes, opShortBinUni, opShortBinstr:
			if i+1 >= len(p) {
				return nil, truncated(op, i)
			}
			argLen = 1 + int(p[i+1])
		case opBinbytes, opBinunicode, opBinstring:
			if i+5 > len(p) {
				return nil, truncated(op, i)
			}
			n := uint64(binary.LittleEndian.Uint32(p[i+1:]))
			if n > uint64(len(p)-i-5) {
				return nil, truncated(op, i)
			}
			argLen = 4 + int(n)

		case opLong1:
			if i+1 >= len(p) {
				return nil, truncated(op, i)
			}
			n := int(p[i+1])
			if i+2+n > len(p) {
				return nil, truncated(op, i)
			}
			rewrite(i, opShortBinbytes, byte(n))
			out = append(out, p[i+2:i+2+n]...)
			out = append(out, opBinpersid)
			i += 2 + n
			continue
		case opLong4:
			if i+5 > len(p) {
				return nil, truncated(op, i)
			}
			n := binary.LittleEndian.Uint32(p[i+1:])
			if uint64(n) > uint64(len(p)-i-5) {
				return nil, truncated(op, i)
			}
			rewrite(i, opBinbytes)
			out = append(out, p[i+1:i+5+int(n)]...)
			out = append(out, opBinpersid)
			i += 5 + int(n)
			continue

		case opBinget, opLongBinget:
			n := 2
			if op == opLongBinget {
				n = 5
			}
			if i+n > len(p) {
				return nil, truncated(op, i)
			}
			// GET x -> GET x TUPLE1 TUPLE1 BINPERSID: the hook sees ((x,),)
			// and lets only immutable values be shared.
			rewrite(i, p[i:i+n]...)
			out = append(out, opTuple1, opTuple1, opBinpersid)
			i += n
			continue

		case opGlobal:
			mod, name := globalName(p[i+1:])
			return nil, fmt.Errorf("GLOBAL %s.%s at offset %d: %w", mod, name, i, ErrNotAllowed)
		case opStackGlobal, opReduce, opBuild, opInst, opObj, opNewobj, opNewobjEx,
			opExt1, opExt2, opExt4, opPersid, opBinpersid, opGet,
			opPut, opDup, opPop, opPopMark, opInt, opLong, opFloat,
			opString, opUnicode, opBinunicode8, opBinbytes8,
			opEmptySet, opAdditems, opFrozenset, opBytearray8, opNextBuffer,
			opReadonlyBuf:
			return nil, fmt.Errorf("opcode %s at offset %d: %w", opName(op), i, ErrNotAllowed)

		default:
			return nil, fmt.Errorf("unknown opcode %#02x at offset %d: %w", op, i, ErrMalformed)
		}
		if i+1+argLen > len(p) {
			return nil, truncated(op, i)
		}
		if out != nil {
			out = append(out, p[i:i+1+argLen]...)
		}
		i += 1 + argLen
	}
	return nil, fmt.Errorf("pickle has no STOP opcode: %w", ErrMalformed)
}

func truncated(op byte, i int) error {
	return fmt.Errorf("opcode %s at offset %d: truncated argument: %w", opName(op), i, ErrMalformed)
}

// globalName extracts "module\nname\n" for an error message.
func globalName(p []byte) (mod, name string) {
	line := func() string {
		j := bytes.IndexByte(p, '\n')
		if j < 0 || j > 100 {
			j = min(len(p), 100)
			s := string(p[:j])
			p = nil
			return s
		}
		s := string(p[:j])
		p = p[j+1:]
		return s
	}
	return line(), line()
}

// opName returns the pickletools name of an opcode, for error messages.
func opName(op byte) string {
	switch op {
	case opGlobal:
		return "GLOBAL"
	case opStackGlobal:
		return "STACK_GLOBAL"
	case opReduce:
		return "REDUCE"
	case opBuild:
		return "BUILD"
	case opInst:
		return "INST"
	case opObj:
		return "OBJ"
	case opNewobj:
		return "NEWOBJ"
	case opNewobjEx:
		return "NEWOBJ_EX"
	case opExt1:
		return "EXT1"
	case opExt2:
		return "EXT2"
	case opExt4:
		return "EXT4"
	case opPersid:
		return "PERSID"
	case opBinpersid:
		return "BINPERSID"
	case opGet:
		return "GET"
	case opBinget:
		return "BINGET"
	case opLongBinget:
		return "LONG_BINGET"
	case opPut:
		return "PUT"
	case opDup:
		return "DUP"
	case opPop:
		return "POP"
	case opPopMark:
		return "POP_MARK"
	case opInt:
		return "INT"
	case opLong:
		return "LONG"
	case opFloat:
		return "FLOAT"
	case opString:
		return "STRING"
	case opUnicode:
		return "UNICODE"
	case opBinunicode8:
		return "BINUNICODE8"
	case opBinbytes8:
		return "BINBYTES8"
	case opLong4:
		return "LONG4"
	case opEmptySet:
		return "EMPTY_SET"
	case opAdditems:
		return "ADDITEMS"
	case opFrozenset:
		return "FROZENSET"
	case opBytearray8:
		return "BYTEARRAY8"
	case opNextBuffer:
		return "NEXT_BUFFER"
	case opReadonlyBuf:
		return "READONLY_BUFFER"
	case opShortBinbytes:
		return "SHORT_BINBYTES"
	case opShortBinUni:
		return "SHORT_BINUNICODE"
	case opShortBinstr:
		return "SHORT_BINSTRING"
	case opBinbytes:
		return "BINBYTES"
	case opBinunicode:
		return "BINUNICODE"
	case opBinstring:
		return "BINSTRING"
	case opLong1:
		return "LONG1"
	case opProto:
		return "PROTO"
	case opBinint:
		return "BININT"
	case opBinint1:
		return "BININT1"
	case opBinint2:
		return "BININT2"
	case opBinfloat:
		return "BINFLOAT"
	case opFrame:
		return "FRAME"
	case opBinput:
		return "BINPUT"
	case opLongBinput:
		return "LONG_BINPUT"
	}
	return fmt.Sprintf("%#02x", op)
}

// persistentLoad receives the persistent ids planted by preparePickle.
func persistentLoad(ref ogórek.Ref) (any, error) {
	switch pid := ref.Pid.(type) {
	case ogórek.None: // EMPTY_DICT
		return []any{dictTag{}}, nil
	case ogórek.Tuple:
		if len(pid) == 1 { // BINGET: ((x,),)
			if inner, ok := pid[0].(ogórek.Tuple); ok && len(inner) == 1 {
				return memoGet(inner[0])
			}
		}
		if len(pid) == 2 { // SETITEM: (key, value)
			return dictItems(pid), nil
		}
	case []any: // SETITEMS or DICT: k1, v1, k2, v2, ...
		if len(pid)%2 != 0 {
			return nil, fmt.Errorf("odd number of dict items: %w", ErrMalformed)
		}
		return dictItems(pid), nil
	case dictItems: // DICT
		return []any{dictTag{}, pid}, nil
	case ogórek.Bytes: // LONG1
		return decodeLong([]byte(pid)), nil
	}
	return nil, fmt.Errorf("unexpected persistent id %T: %w", ref.Pid, ErrMalformed)
}

// memoGet admits a value read from the memo. Strings, bytes, numbers and
// tuples may be shared (Python's non-fast pickler writes a BINGET for every
// repeated object, e.g. the cached one-character strings). Lists and dicts
// may not: og-rek's lists are Go slices, so appending to a shared one copies
// it, which a hostile pickle could repeat to use quadratic time and memory.
func memoGet(v any) (any, error) {
	switch v.(type) {
	case []any:
		return nil, fmt.Errorf("memo read of a list or dict (a shared mutable container): %w", ErrNotAllowed)
	case dictItems, dictTag:
		return nil, fmt.Errorf("memo read of dict items: %w", ErrMalformed)
	}
	return v, nil
}

// decodeLong decodes a little-endian two's complement integer (pickle LONG1).
func decodeLong(le []byte) any {
	if len(le) == 0 {
		return int64(0)
	}
	if len(le) <= 8 {
		var u uint64
		for i := len(le) - 1; i >= 0; i-- {
			u = u<<8 | uint64(le[i])
		}
		shift := uint(64 - 8*len(le))
		return int64(u<<shift) >> shift // sign-extend
	}
	be := make([]byte, len(le))
	for i, c := range le {
		be[len(le)-1-i] = c
	}
	n := new(big.Int).SetBytes(be)
	if le[len(le)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(le))))
	}
	return normInt(n)
}

// decodePickle decodes one pickle into the value model.
func decodePickle(p []byte) (any, error) {
	if v, ok := decodeSimplePickle(p); ok {
		return v, nil
	}
	return decodePickleOgrek(p)
}

// decodePickleOgrek decodes any pickle through og-rek.
func decodePickleOgrek(p []byte) (any, error) {
	stream, err := preparePickle(p)
	if err != nil {
		return nil, err
	}
	// og-rek flattens the hook's errors into text; keep the first one to
	// report it with its classification.
	var hookErr error
	dec := ogórek.NewDecoderWithConfig(bytes.NewReader(stream), &ogórek.DecoderConfig{
		PersistentLoad: func(ref ogórek.Ref) (any, error) {
			v, err := persistentLoad(ref)
			if err != nil && hookErr == nil {
				hookErr = err
			}
			return v, err
		},
	})
	v, err := dec.Decode()
	if hookErr != nil {
		return nil, hookErr
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	c := converter{values: len(stream), data: len(stream)}
	return c.convert(v, 0)
}

// converter turns og-rek's values into the value model.
//
// Without memo reads every value costs at least one opcode byte and every
// string byte appears in the stream, so the two budgets only bite when a
// pickle uses BINGET to make shared values expand on conversion.
type converter struct {
	values int // values left to produce
	data   int // str and bytes payload left to produce
}

func (c *converter) spend(n int) error {
	if c.data -= n; c.data < 0 {
		return fmt.Errorf("pickle expands to more string data than its size: %w", ErrMalformed)
	}
	return nil
}

func (c *converter) convert(v any, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("pickle nested deeper than %d: %w", MaxDepth, ErrMalformed)
	}
	if c.values--; c.values < 0 {
		return nil, fmt.Errorf("pickle expands to more values than opcodes: %w", ErrMalformed)
	}
	switch v := v.(type) {
	case ogórek.None:
		return nil, nil
	case bool, int64, float64:
		return v, nil
	case string:
		return v, c.spend(len(v))
	case *big.Int:
		return normInt(v), nil
	case ogórek.Bytes:
		return []byte(v), c.spend(len(v))
	case ogórek.Tuple:
		t := make(Tuple, len(v))
		for i, x := range v {
			var err error
			if t[i], err = c.convert(x, depth+1); err != nil {
				return nil, err
			}
		}
		return t, nil
	case []any:
		if len(v) > 0 {
			if _, ok := v[0].(dictTag); ok {
				return c.dict(v[1:], depth)
			}
		}
		l := make(List, len(v))
		for i, x := range v {
			switch x.(type) {
			case dictItems, dictTag:
				return nil, fmt.Errorf("SETITEM(S) on a list: %w", ErrMalformed)
			}
			var err error
			if l[i], err = c.convert(x, depth+1); err != nil {
				return nil, err
			}
		}
		return l, nil
	case dictItems, dictTag:
		return nil, fmt.Errorf("dict items outside a dict: %w", ErrMalformed)
	}
	return nil, fmt.Errorf("unexpected decoded value of Go type %T: %w", v, ErrMalformed)
}

func (c *converter) dict(batches []any, depth int) (*Dict, error) {
	d := new(Dict)
	for _, x := range batches {
		items, ok := x.(dictItems)
		if !ok {
			return nil, fmt.Errorf("APPEND on a dict: %w", ErrMalformed)
		}
		for i := 0; i+1 < len(items); i += 2 {
			k, err := c.convert(items[i], depth+1)
			if err != nil {
				return nil, err
			}
			v, err := c.convert(items[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			if err := d.set(k, v); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// PickleCodec is the "Z" encoding: each message is one protocol-3 pickle as
// written by zodbpickle in fast mode (spec B.4).
type PickleCodec struct{}

var _ Codec = PickleCodec{}

// Encoding returns Pickle.
func (PickleCodec) Encoding() Encoding { return Pickle }

// Encode pickles (msgid, flag, method, args).
func (PickleCodec) Encode(m Message) ([]byte, error) {
	return appendPickleMessage(make([]byte, 0, 64+estimateSize(m.Args)), m)
}

// EncodeFrame returns the pickled message with its length prefix.
func (PickleCodec) EncodeFrame(m Message) ([]byte, error) {
	f, err := appendPickleMessage(make([]byte, HeaderSize, HeaderSize+64+estimateSize(m.Args)), m)
	if err != nil {
		return nil, err
	}
	return finishFrame(f)
}

func appendPickleMessage(b []byte, m Message) ([]byte, error) {
	b = append(b, opProto, 3, opMark)
	var e pickleEncoder
	var err error
	for _, v := range [...]any{m.MsgID, m.Flag, m.Method, m.Args} {
		if b, err = e.value(b, v, 1); err != nil {
			return nil, err
		}
	}
	return append(b, opTuple, opStop), nil
}

// Decode unpickles a message.
func (c PickleCodec) Decode(p []byte) (Message, error) {
	v, err := decodePickle(p)
	if err != nil {
		return Message{}, fmt.Errorf("zeo: pickle decode: %w", err)
	}
	m, err := messageFromValue(v)
	if err != nil {
		return Message{}, fmt.Errorf("zeo: pickle decode: %w", err)
	}
	return m, nil
}

// EncodeValue pickles a single value (PROTO 3 ... STOP).
func (PickleCodec) EncodeValue(v any) ([]byte, error) {
	var e pickleEncoder
	b, err := e.value([]byte{opProto, 3}, v, 0)
	if err != nil {
		return nil, err
	}
	return append(b, opStop), nil
}

// DecodeValue unpickles a single value under the same rules as Decode.
func (PickleCodec) DecodeValue(p []byte) (any, error) {
	v, err := decodePickle(p)
	if err != nil {
		return nil, fmt.Errorf("zeo: pickle decode: %w", err)
	}
	return v, nil
}

// estimateSize guesses the encoded size of a message's args from the byte
// strings at their top level (object data in stores and loads) so that
// Encode usually allocates once.
func estimateSize(v any) int {
	size := func(v any) int {
		switch v := v.(type) {
		case []byte:
			return len(v) + 5
		case string:
			return len(v) + 5
		}
		return 16
	}
	if t, ok := v.(Tuple); ok {
		n := 2
		for _, x := range t {
			n += size(x)
		}
		return n
	}
	return size(v)
}
