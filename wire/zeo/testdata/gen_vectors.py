#!/usr/bin/python3
"""Generate vectors_test.go: encodings of test values by CPython's C pickler
(protocol 3, fast mode, as ZEO's marshal.encoder) and msgpack-python's
packb(use_bin_type=True), plus the repr of what Python decodes.

Run with the interpreter the recordings were made with (Python 3.11,
msgpack 1.0.3), from wire/zeo:  /usr/bin/python3 testdata/gen_vectors.py
"""
import hashlib, io, pickle, sys
import msgpack

# (name, Python value, Go expression)
def I(n):
    if -2**63 <= n < 2**63:
        return (f"int{n}", n, f"int64({n})")
    return (f"int{n}" if abs(n) < 2**70 else f"int_2^{n.bit_length()}{'neg' if n < 0 else ''}", n, f'bi("{n}")')

cases = [
    ("None", None, "nil"), ("True", True, "true"), ("False", False, "false"),
]
for n in [0, 1, 127, 128, 255, 256, 65535, 65536, 2**31-1, 2**31, 2**32-1, 2**32,
          -1, -31, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31-1,
          139772912705360, 2**63-1, -2**63, 2**63, 2**64-1, 2**64, -2**63-1, -2**64,
          -2**64-1, 2**1015, 2**1016, -2**1016, -2**1016-1, 2**2039, 2**2040, -2**2047, -2**2047-1, 2**4000]:
    cases.append(I(n))
floats = [("0.0", "0.0"), ("-0.0", "math.Copysign(0, -1)"), ("1.5", "1.5"),
          ("1709251206.0", "1709251206.0"), ("1e16", "1e16"), ("1e15", "1e15"),
          ("1e-5", "1e-5"), ("0.0001", "0.0001"), ("0.1", "0.1"), ("1e300", "1e300"),
          ("-2.5e-300", "-2.5e-300"), ("123456789.125", "123456789.125"),
          ("float('inf')", "math.Inf(1)"), ("float('-inf')", "math.Inf(-1)"),
          ("float('nan')", "math.Float64frombits(0x7ff8000000000000)")]
for py, go in floats:
    cases.append((f"float {py}", eval(py), go))
strs = [("''", '""'), ("'a'", '"a"'), ("'h\\xe9llo'", '"héllo"'), ("'\\u65e5\\u672c\\u8a9e'", '"日本語"'),
        ("'\\U0001f600'", '"\\U0001F600"'), ("\"it's\"", '"it\'s"'), ("'say \"hi\"'", '"say \\"hi\\""'),
        ("'both \\' and \"'", '"both \' and \\""'), ("'\\n\\t\\r\\x00\\x7f\\\\'", '"\\n\\t\\r\\x00\\x7f\\\\"'),
        ("'\\u200b\\xa0\\xad'", '"\\u200b\\u00a0\\u00ad"')]
for py, go in strs:
    cases.append((f"str {py}", eval(py), go))
for n in [31, 32, 255, 256, 65535, 65536]:
    cases.append((f"str x*{n}", "x" * n, f'strings.Repeat("x", {n})'))
bys = [("b''", "[]byte{}"), ("b\"it's\"", '[]byte("it\'s")'), ("b'\\\\\\x00\\xff\"'", '[]byte("\\\\\\x00\\xff\\"")'),
       ("b'\\x03\\xf6\\xea\\xc0\\x04DDD'", '[]byte("\\x03\\xf6\\xea\\xc0\\x04DDD")')]
for py, go in bys:
    cases.append((f"bytes {py}", eval(py), go))
for n in [255, 256, 65535, 65536]:
    cases.append((f"bytes {n}", bytes(i % 251 for i in range(n)), f"seqBytes({n})"))
cases += [
    ("tuple0", (), "Tuple{}"), ("tuple1", (1,), "Tuple{int64(1)}"),
    ("tuple2", (1, "a"), 'Tuple{int64(1), "a"}'), ("tuple3", (1, None, b"b"), 'Tuple{int64(1), nil, []byte("b")}'),
    ("tuple4", (1, 2, 3, 4), "Tuple{int64(1), int64(2), int64(3), int64(4)}"),
    ("tuple nested", ((1,), ((),), [()]), "Tuple{Tuple{int64(1)}, Tuple{Tuple{}}, List{Tuple{}}}"),
    ("list0", [], "List{}"), ("list1", [1], "List{int64(1)}"), ("list2", [1, "x"], 'List{int64(1), "x"}'),
    ("list nested", [[], [1, [2]]], "List{List{}, List{int64(1), List{int64(2)}}}"),
    ("dict0", {}, "NewDict()"), ("dict1", {"a": 1}, 'NewDict("a", int64(1))'),
    ("dict2", {"b": 1, "a": 2}, 'NewDict("b", int64(1), "a", int64(2))'),
    ("dict nested", {"a": {"b": {"c": {}}}, "z": [{}]}, 'NewDict("a", NewDict("b", NewDict("c", NewDict())), "z", List{NewDict()})'),
    ("dict bytes key", {b"k": 1, "k": 2}, 'NewDict([]byte("k"), int64(1), "k", int64(2))'),
    ("dict int key", {1: "x", 2: None}, 'NewDict(int64(1), "x", int64(2), nil)'),
    ("dict tuple value", {"t": (b"x", None, True, 1.5)}, 'NewDict("t", Tuple{[]byte("x"), nil, true, 1.5})'),
    ("loadBefore reply", (b"\x80\x03cBTrees.Length\nLength\nq\x00.\x80\x03K\x0b.", b"\x03\xf6\xea\xc0\x19\x99\x99\x99", None),
     'Tuple{[]byte("\\x80\\x03cBTrees.Length\\nLength\\nq\\x00.\\x80\\x03K\\x0b."), []byte("\\x03\\xf6\\xea\\xc0\\x19\\x99\\x99\\x99"), nil}'),
]
for n in [15, 16, 999, 1000, 1001, 2000, 2001, 65535, 65536]:
    cases.append((f"list range({n})", list(range(n)), f"intList({n})"))
for n in [15, 16, 999, 1000, 1001, 2000, 2001, 65536]:
    cases.append((f"dict {n} items", {f"k{i}": i for i in range(n)}, f"strDict({n})"))

def dump_pickle(v):
    f = io.BytesIO()
    p = pickle.Pickler(f, 3)
    p.fast = 1
    p.dump(v)
    return f.getvalue()

def show(b):
    if len(b) <= 600:
        return b.hex()
    return f"sha256:{hashlib.sha256(b).hexdigest()}:{len(b)}"

def show_repr(s):
    if len(s) <= 600:
        return s
    return f"sha256:{hashlib.sha256(s.encode()).hexdigest()}:{len(s)}"

def gostr(s):
    out = '"'
    for ch in s:
        if ch in '"\\':
            out += "\\" + ch
        elif ch == "\n":
            out += "\\n"
        elif 0x20 <= ord(ch) < 0x7f:
            out += ch
        elif ord(ch) < 0x10000:
            out += f"\\u{ord(ch):04x}"
        else:
            out += f"\\U{ord(ch):08x}"
    return out + '"'

out = ["// Code generated by testdata/gen_vectors.py with Python %s and msgpack %s; DO NOT EDIT.\n"
       % (sys.version.split()[0], ".".join(map(str, msgpack.version))),
       "package zeo\n",
       'import (\n\t"math"\n\t"strings"\n)\n',
       "var _ = math.Inf\nvar _ = strings.Repeat\n",
       "var pyVectors = []pyVector{"]
for name, v, go in cases:
    pk = dump_pickle(v)
    prepr = repr(pickle.loads(pk))
    try:
        mp = msgpack.packb(v, use_bin_type=True)
        try:
            mrepr = repr(msgpack.unpackb(mp, raw=False, use_list=False))
        except Exception as e:
            mrepr = "error: " + type(e).__name__
        mhex = show(mp)
    except Exception as e:
        mhex, mrepr = "error: " + type(e).__name__, ""
    out.append(f"\t{{{gostr(name)}, {go}, {gostr(show(pk))}, {gostr(show_repr(prepr))}, {gostr(mhex)}, {gostr(show_repr(mrepr))}}},")
out.append("}\n")

# Pickles written by other pickler settings, decoded only: (name, data,
# Python repr of the value, or "" when the Go decoder must refuse them).
msg = (7, False, "tpc_begin", (139772912705360, b"alice", "d\xe9scription", {"request": "/x", "seq": [1, 2.5, None]}, None, " "))
def pick(v, proto, fast):
    f = io.BytesIO()
    p = pickle.Pickler(f, proto)
    p.fast = fast
    p.dump(v)
    return f.getvalue()
shared = b"shared-bytes"
decode_only = [
    ("proto3 fast", pick(msg, 3, 1), True),
    ("proto3 memo", pick(msg, 3, 0), True),
    ("proto4 fast", pick(msg, 4, 1), True),
    ("proto4 memo", pick(msg, 4, 0), True),
    ("proto5 fast", pick(msg, 5, 1), True),
    ("proto3 shared bytes use BINGET", pick((shared, shared), 3, 0), True),
    ("proto4 shared bytes use BINGET", pick([shared, shared], 4, 0), True),
    ("shared one-char strings use BINGET", pick({"a": "a", "": ("", "a"), "b": b"", "c": b""}, 3, 0), True),
    ("shared tuple uses BINGET", pick((t3 := (1, "x"), [t3]), 3, 0), True),
    ("shared list uses BINGET", pick((l1 := [1], l1), 3, 0), False),
    ("shared dict uses BINGET", pick([d1 := {}, d1], 3, 0), False),
    ("proto2 bytes need a global", pick(b"x", 2, 1), False),
    ("proto0 text opcodes", pick((1, "a"), 0, 1), False),
    ("reduce os.system", b"\x80\x03cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.", False),
    ("persistent id", pick(None, 3, 1)[:-1].replace(b"N", b"X\x01\x00\x00\x00pQ") + b".", False),
]
class P(pickle.Pickler):
    def persistent_id(self, obj):
        return "pid" if obj == "magic" else None
f = io.BytesIO(); P(f, 3).dump(("magic",)); decode_only.append(("persistent_id pickler", f.getvalue(), False))
out.append("var pickleDecodeVectors = []struct{ name, hex, repr string }{")
for name, data, ok in decode_only:
    r = repr(pickle.loads(data)) if ok else ""
    out.append(f"\t{{{gostr(name)}, {gostr(data.hex())}, {gostr(r)}}},")
out.append("}\n")

# json.dumps, the encoding of the ruok reply: (Python value, Go expression).
import json
json_cases = [
    ("None", "nil"), ("True", "true"), ("[1, -2, 2**70]", 'List{int64(1), int64(-2), bi("1180591620717411303424")}'),
    ("(1.0, 1e16, 1e-5, 0.1, -0.0)", "Tuple{1.0, 1e16, 1e-5, 0.1, math.Copysign(0, -1)}"),
    ("[float('inf'), float('-inf'), float('nan')]", "List{math.Inf(1), math.Inf(-1), math.NaN()}"),
    (r"'h\xe9 \u65e5 \U0001f600 \x00\x1f\x7f\n\r\t\b\f\"\\/'", r'"h\u00e9 \u65e5 \U0001f600 \x00\x1f\x7f\n\r\t\b\f\"\\/"'),
    ("{'b': {}, 'a': [], 1: None, 2.5: 1, False: 2, None: 3}", 'NewDict("b", NewDict(), "a", List{}, int64(1), nil, 2.5, int64(1), false, int64(2), nil, int64(3))'),
    ("{'1': {'connections': 2, 'lock_time': None, 'start': 'Sun Nov 22 02:57:11 2026', 'last-transaction': '03f6eac02eeeeeee'}}",
     'NewDict("1", NewDict("connections", int64(2), "lock_time", nil, "start", "Sun Nov 22 02:57:11 2026", "last-transaction", "03f6eac02eeeeeee"))'),
]
out.append("var jsonVectors = []struct {\n\tvalue any\n\tjson  string\n}{")
for py, go in json_cases:
    out.append(f"\t{{{go}, {gostr(json.dumps(eval(py)))}}},")
out.append("}\n")

# Transaction extensions as a Python ZEO server stores them: the dict
# arrives unpickled from a Z5 tpc_begin and FileStorage writes
# dumps(ext, 3) with a normal (memoizing) pickler.
ext_cases = [
    ({"request": "/create"}, 'NewDict("request", "/create")'),
    ({"a": "a", "": ("", "a", b"", b"z", b"z", b"zz", b"zz")}, 'NewDict("a", "a", "", Tuple{"", "a", []byte{}, []byte("z"), []byte("z"), []byte("zz"), []byte("zz")})'),
    ({"user": "x", "nested": {"user": "xy", "u": ["\xfc", "\xfc", "\u0101", "\u0101"]}, "t": ((1, 2.5), (), None, True)},
     'NewDict("user", "x", "nested", NewDict("user", "xy", "u", List{"\u00fc", "\u00fc", "\u0101", "\u0101"}), "t", Tuple{Tuple{int64(1), 2.5}, Tuple{}, nil, true})'),
    ({f"k{i}": ("v", i) for i in range(300)}, "extDict300()"),
]
out.append("var extensionVectors = []struct {\n\tvalue any\n\thex   string\n}{")
for v, go in ext_cases:
    received = pickle.loads(dump_pickle(v))  # as the ZEO server unpickles it
    out.append(f"\t{{{go}, {gostr(pickle.dumps(received, 3).hex())}}},")
out.append("}\n")
open("vectors_test.go", "w").write("\n".join(out))
print(len(cases), "cases")
