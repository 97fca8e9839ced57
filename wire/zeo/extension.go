package zeo

import "fmt"

// EncodeExtension returns a transaction's extension dict the way ZODB
// stores it in a transaction record (TransactionMetaData.extension_bytes):
// nil for an empty dict, otherwise a protocol-3 pickle written by a normal,
// memoizing pickler (unlike ZEO messages, which are fast-mode pickles).
//
// Memoization depends on object identity, which Go values lack; the result
// treats as shared exactly the objects CPython shares after unpickling (the
// empty and one-character latin-1 strings, the empty bytes). So
// for an extension received in a Z5 tpc_begin it is byte-for-byte what a
// Python ZEO server stores. (For M5, msgpack-python interns map keys, so a
// multi-character key repeated in nested dicts would be a BINGET in
// Python's bytes and a second copy in ours; both decode to the same dict.)
//
// ext must be a *Dict (or nil); anything else wraps ErrUnsupportedValue.
func EncodeExtension(ext any) ([]byte, error) {
	var d *Dict
	switch v := ext.(type) {
	case nil:
	case *Dict:
		d = v
	case Dict:
		d = &v
	default:
		return nil, fmt.Errorf("zeo: transaction extension is a %s, not a dict: %w", TypeName(ext), ErrUnsupportedValue)
	}
	if d.Len() == 0 {
		return nil, nil
	}
	e := pickleEncoder{memo: new(pickleMemo)}
	b, err := e.value([]byte{opProto, 3}, d, 0)
	if err != nil {
		return nil, err
	}
	return append(b, opStop), nil
}

// DecodeExtension decodes the extension bytes of a transaction record:
// empty bytes give an empty dict, anything else must be a pickled dict
// (decoded under the same rules as messages, memo reads of strings and
// other immutable values included).
func DecodeExtension(p []byte) (*Dict, error) {
	if len(p) == 0 {
		return new(Dict), nil
	}
	v, err := decodePickle(p)
	if err != nil {
		return nil, fmt.Errorf("zeo: transaction extension: %w", err)
	}
	d, ok := v.(*Dict)
	if !ok {
		return nil, fmt.Errorf("zeo: transaction extension is a %s, not a dict: %w", TypeName(v), ErrMalformed)
	}
	return d, nil
}
