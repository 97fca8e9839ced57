package zeo

import "encoding/binary"

// Most messages are a handful of scalars in tuples: loadBefore calls and
// their replies, storea, vote, tpc_finish, invalidations. For those,
// setting up og-rek (a buffered reader, a memo map and a stack per
// message) and converting its values afterwards costs more than the rest
// of a round trip, so decodeSimplePickle decodes them directly.
//
// It handles only what the pickler writes for those messages in fast mode:
// PROTO first, then MARK, NONE, NEWTRUE, NEWFALSE, BININT1, BININT2,
// BININT, LONG1 of at most 8 bytes, SHORT_BINBYTES, BINBYTES,
// SHORT_BINUNICODE, BINUNICODE, EMPTY_TUPLE, TUPLE, TUPLE1..3, EMPTY_LIST,
// APPEND, APPENDS, LIST, EMPTY_DICT, SETITEM and SETITEMS, ending with STOP
// as the last byte and exactly one value on the stack. Anything else (memo
// opcodes, DICT, floats, a stack left with marks or several values, errors
// of any kind) makes it decline, and decodePickle takes the og-rek path,
// so the results and errors for such pickles are those of og-rek. For the
// pickles it accepts it returns what the og-rek path returns;
// FuzzSimplePickle checks that.

// simpleStackSize is the fast path's stack that needs no allocation,
// enough for the hot messages; maxSimpleStack bounds it (an invalidation
// of many objects has them all on the stack before APPENDS).
const (
	simpleStackSize = 16
	maxSimpleStack  = 1 << 16
)

// simpleValue is a value on the fast path's stack, with its nesting
// height, so that pickles the og-rek path would refuse as too deep
// decline.
type simpleValue struct {
	v      any
	height int
	mark   bool
}

// decodeSimplePickle decodes p if it is a simple pickle; ok is false
// otherwise, and p must then be decoded by the general path.
func decodeSimplePickle(p []byte) (v any, ok bool) {
	if len(p) < 3 || p[0] != opProto || p[1] > 5 {
		return nil, false
	}
	var backing [simpleStackSize]simpleValue
	stack := backing[:0]
	// The byte strings share one allocation, sized for the rest of the
	// message on the first one.
	var arena []byte
	bytesValue := func(data []byte, rest int) []byte {
		if arena == nil {
			arena = make([]byte, 0, rest)
		}
		start := len(arena)
		arena = append(arena, data...)
		return arena[start:len(arena):len(arena)]
	}
	push := func(v any, height int) bool {
		if len(stack) == maxSimpleStack || height >= MaxDepth {
			return false
		}
		stack = append(stack, simpleValue{v: v, height: height})
		return true
	}
	// topMark returns the index of the topmost mark, or -1.
	topMark := func() int {
		for k := len(stack) - 1; k >= 0; k-- {
			if stack[k].mark {
				return k
			}
		}
		return -1
	}
	// items returns the values above index k, none of them a mark, and
	// their greatest height.
	items := func(k int) ([]any, int, bool) {
		xs := make([]any, len(stack)-k)
		h := 0
		for i, s := range stack[k:] {
			if s.mark {
				return nil, 0, false
			}
			xs[i] = s.v
			h = max(h, s.height)
		}
		return xs, h, true
	}
	// popMarked pops the topmost mark and the values above it (TUPLE,
	// LIST), returning the values and their greatest height.
	popMarked := func() ([]any, int, bool) {
		k := topMark()
		if k < 0 {
			return nil, 0, false
		}
		xs, h, good := items(k + 1)
		if good {
			stack = stack[:k]
		}
		return xs, h, good
	}
	i := 2
	for i < len(p) {
		op := p[i]
		i++
		switch op {
		case opStop:
			if i != len(p) || len(stack) != 1 || stack[0].mark {
				return nil, false
			}
			return stack[0].v, true
		case opMark:
			if len(stack) == maxSimpleStack {
				return nil, false
			}
			stack = append(stack, simpleValue{mark: true})
			continue
		case opNone:
			ok = push(nil, 0)
		case opNewtrue:
			ok = push(true, 0)
		case opNewfalse:
			ok = push(false, 0)
		case opBinint1:
			if i+1 > len(p) {
				return nil, false
			}
			ok = push(int64(p[i]), 0)
			i++
		case opBinint2:
			if i+2 > len(p) {
				return nil, false
			}
			ok = push(int64(binary.LittleEndian.Uint16(p[i:])), 0)
			i += 2
		case opBinint:
			if i+4 > len(p) {
				return nil, false
			}
			ok = push(int64(int32(binary.LittleEndian.Uint32(p[i:]))), 0)
			i += 4
		case opLong1:
			if i+1 > len(p) || p[i] > 8 || i+1+int(p[i]) > len(p) {
				return nil, false
			}
			n := int(p[i])
			ok = push(decodeLong(p[i+1:i+1+n]), 0)
			i += 1 + n
		case opShortBinbytes, opShortBinUni:
			if i+1 > len(p) || i+1+int(p[i]) > len(p) {
				return nil, false
			}
			data := p[i+1 : i+1+int(p[i])]
			i += 1 + len(data)
			if op == opShortBinUni {
				ok = push(str(data), 0)
			} else {
				ok = push(bytesValue(data, len(p)-i+len(data)), 0)
			}
		case opBinbytes, opBinunicode:
			if i+4 > len(p) {
				return nil, false
			}
			n := uint64(binary.LittleEndian.Uint32(p[i:]))
			if n > uint64(len(p)-i-4) {
				return nil, false
			}
			data := p[i+4 : i+4+int(n)]
			i += 4 + len(data)
			if op == opBinunicode {
				ok = push(str(data), 0)
			} else {
				ok = push(bytesValue(data, len(p)-i+len(data)), 0)
			}
		case opEmptyTuple:
			ok = push(Tuple{}, 0)
		case opTuple1, opTuple2, opTuple3:
			k := len(stack) - int(op-opTuple1+1)
			if k < 0 {
				return nil, false
			}
			xs, h, good := items(k)
			if !good {
				return nil, false
			}
			stack = stack[:k]
			ok = push(Tuple(xs), h+1)
		case opTuple:
			xs, h, good := popMarked()
			if !good {
				return nil, false
			}
			if len(xs) == 0 {
				ok = push(Tuple{}, 0)
			} else {
				ok = push(Tuple(xs), h+1)
			}
		case opEmptyList:
			ok = push(List{}, 0)
		case opList:
			xs, h, good := popMarked()
			if !good {
				return nil, false
			}
			if len(xs) == 0 {
				ok = push(List{}, 0)
			} else {
				ok = push(List(xs), h+1)
			}
		case opAppend, opAppends:
			// APPEND: [... list x]; APPENDS: [... list MARK x...].
			first, list := len(stack)-1, len(stack)-2
			if op == opAppends {
				first = topMark() + 1
				list = first - 2
			}
			if list < 0 {
				return nil, false
			}
			xs, h, good := items(first)
			l, isList := stack[list].v.(List)
			if !good || !isList {
				return nil, false
			}
			if len(xs) > 0 {
				if h+1 >= MaxDepth {
					return nil, false
				}
				stack[list].v = append(l, xs...)
				stack[list].height = max(stack[list].height, h+1)
			}
			stack = stack[:list+1]
			ok = true
		case opEmptyDict:
			ok = push(new(Dict), 0)
		case opSetitem, opSetitems:
			// SETITEM: [... dict k v]; SETITEMS: [... dict MARK k v ...].
			first, dict := len(stack)-2, len(stack)-3
			if op == opSetitems {
				first = topMark() + 1
				dict = first - 2
			}
			if dict < 0 {
				return nil, false
			}
			xs, h, good := items(first)
			d, isDict := stack[dict].v.(*Dict)
			if !good || !isDict || len(xs)%2 != 0 {
				return nil, false
			}
			if len(xs) > 0 {
				if h+1 >= MaxDepth {
					return nil, false
				}
				for j := 0; j < len(xs); j += 2 {
					if d.set(xs[j], xs[j+1]) != nil {
						return nil, false
					}
				}
				stack[dict].height = max(stack[dict].height, h+1)
			}
			stack = stack[:dict+1]
			ok = true
		default:
			return nil, false
		}
		if !ok {
			return nil, false
		}
	}
	return nil, false
}

// str returns b as a string, without allocating for the method names of
// the frequent messages.
func str(b []byte) string {
	switch string(b) {
	case ReplyMethod:
		return ReplyMethod
	case "loadBefore":
		return "loadBefore"
	case "invalidateTransaction":
		return "invalidateTransaction"
	case "tpc_begin":
		return "tpc_begin"
	case "storea":
		return "storea"
	case "vote":
		return "vote"
	case "tpc_finish":
		return "tpc_finish"
	case "info":
		return "info"
	case "length":
		return "length"
	case "size":
		return "size"
	case " ":
		return " "
	}
	return string(b)
}
