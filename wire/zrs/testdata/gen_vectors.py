# Generates pickleVectors in pickle_test.go: CPython 3 protocol-1 fast-mode
# pickles (STOP stripped). Run with python3 and paste the output; the
# negative zero case is then written as math.Copysign(0, -1) by hand.
import pickle, io
def fast(o):
    f=io.BytesIO(); p=pickle.Pickler(f,1); p.fast=1; p.dump(o); return f.getvalue()
cases = [
 ('nil', None),
 ('true', True), ('false', False),
 ('int64(0)', 0), ('int64(255)', 255), ('int64(256)', 256), ('int64(65535)', 65535), ('int64(65536)', 65536),
 ('int64(-1)', -1), ('int64(math.MinInt32)', -2**31), ('int64(math.MaxInt32)', 2**31-1),
 ('int64(math.MaxInt32 + 1)', 2**31), ('int64(math.MinInt32 - 1)', -2**31-1),
 ('int64(math.MaxInt64)', 2**63-1), ('int64(math.MinInt64)', -2**63),
 ('bigInt("18446744073709551616")', 2**64), ('bigInt("-100000000000000000000000000000")', -10**29),
 ('1.5', 1.5), ('-0.0', -0.0), ('math.Inf(1)', float('inf')),
 ('""', ''), ('"abc"', 'abc'), ('"\u00fc\u2713\U0001F600"', '\u00fc\u2713\U0001F600'),
 ('"\\xed\\xb2\\x80"', '\udc80'),
 ('[]byte{}', b''), ('[]byte("abc")', b'abc'), ('[]byte{0, 0x7f, 0x80, 0xff}', b'\x00\x7f\x80\xff'),
 ('zeo.Tuple{}', ()), ('zeo.Tuple{int64(1)}', (1,)), ('zeo.Tuple{int64(1), "a", nil}', (1,'a',None)),
 ('zeo.List{}', []), ('zeo.List{int64(1)}', [1]), ('zeo.List{int64(1), int64(2)}', [1,2]),
 ('seq(zeo.List{}, 1000)', list(range(1000))), ('seq(zeo.List{}, 1001)', list(range(1001))), ('seq(zeo.List{}, 2000)', list(range(2000))),
 ('zeo.NewDict()', {}), ('zeo.NewDict("a", int64(1))', {'a':1}), ('zeo.NewDict("a", int64(1), "b", []byte("x"))', {'a':1,'b':b'x'}),
 ('dictN(1000)', {i:i for i in range(1000)}), ('dictN(1001)', {i:i for i in range(1001)}), ('dictN(2000)', {i:i for i in range(2000)}),
 ('zeo.NewDict(zeo.Tuple{int64(1), "k"}, zeo.List{zeo.NewDict("n", nil)}, 2.5, false)', {(1,'k'):[{'n':None}], 2.5:False}),
]
import hashlib
print("var pickleVectors = []struct {\n\tname  string\n\tvalue any\n\twant  string // hex, or sha256:hex of longer pickles\n}{")
for go, py in cases:
    b = fast(py)[:-1]   # without STOP
    h = b.hex() if len(b) <= 200 else 'sha256:'+hashlib.sha256(b).hexdigest()
    print('\t{`%s`, %s, "%s"},' % (go, go, h))
print("}")
