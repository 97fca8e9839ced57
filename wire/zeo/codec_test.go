package zeo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pyVector is a value with its encodings and decoded repr as produced by
// CPython (see testdata/gen_vectors.py). Long encodings and reprs are given
// as "sha256:HEX:LEN".
type pyVector struct {
	name        string
	value       any
	pickle      string
	pickleRepr  string
	msgpack     string // or "error: ExcName" when packb fails
	msgpackRepr string // or "error: ExcName" when unpackb fails
}

func bi(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return n
}

func seqBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func intList(n int) List {
	l := make(List, n)
	for i := range l {
		l[i] = int64(i)
	}
	return l
}

func strDict(n int) *Dict {
	d := new(Dict)
	for i := range n {
		d.Set(fmt.Sprintf("k%d", i), int64(i))
	}
	return d
}

// matches compares data with a vector's hex or "sha256:HEX:LEN" form.
func matches(data []byte, want string) bool {
	if rest, ok := strings.CutPrefix(want, "sha256:"); ok {
		sum := sha256.Sum256(data)
		return rest == fmt.Sprintf("%x:%d", sum, len(data))
	}
	return hex.EncodeToString(data) == want
}

func shortHex(b []byte) string {
	if len(b) > 200 {
		return fmt.Sprintf("%x...(%d bytes)", b[:200], len(b))
	}
	return hex.EncodeToString(b)
}

func TestPickleVectors(t *testing.T) {
	var c PickleCodec
	for _, v := range pyVectors {
		got, err := c.EncodeValue(v.value)
		if err != nil {
			t.Errorf("%s: encode: %v", v.name, err)
			continue
		}
		if !matches(got, v.pickle) {
			t.Errorf("%s: pickle\n got %s\nwant %s", v.name, shortHex(got), v.pickle)
			continue
		}
		dec, err := c.DecodeValue(got)
		if err != nil {
			t.Errorf("%s: decode: %v", v.name, err)
			continue
		}
		if r := Repr(dec); !matches([]byte(r), v.pickleRepr) && r != v.pickleRepr {
			t.Errorf("%s: decoded repr\n got %.300s\nwant %.300s", v.name, r, v.pickleRepr)
		}
	}
}

func TestMsgpackVectors(t *testing.T) {
	var c MsgpackCodec
	for _, v := range pyVectors {
		got, err := c.EncodeValue(v.value)
		if strings.HasPrefix(v.msgpack, "error:") {
			if !errors.Is(err, ErrUnsupportedValue) {
				t.Errorf("%s: encode: got %x, %v; want ErrUnsupportedValue (Python: %s)", v.name, got, err, v.msgpack)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: encode: %v", v.name, err)
			continue
		}
		if !matches(got, v.msgpack) {
			t.Errorf("%s: msgpack\n got %s\nwant %s", v.name, shortHex(got), v.msgpack)
			continue
		}
		dec, err := c.DecodeValue(got)
		if strings.HasPrefix(v.msgpackRepr, "error:") {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: decode: got %v, %v; want ErrMalformed (Python: %s)", v.name, Repr(dec), err, v.msgpackRepr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: decode: %v", v.name, err)
			continue
		}
		if r := Repr(dec); !matches([]byte(r), v.msgpackRepr) && r != v.msgpackRepr {
			t.Errorf("%s: decoded repr\n got %.300s\nwant %.300s", v.name, r, v.msgpackRepr)
		}
	}
}

func extDict300() *Dict {
	d := new(Dict)
	for i := range 300 {
		d.Set(fmt.Sprintf("k%d", i), Tuple{"v", int64(i)})
	}
	return d
}

func TestExtensionVectors(t *testing.T) {
	for _, v := range extensionVectors {
		got, err := EncodeExtension(v.value)
		if err != nil {
			t.Errorf("%.80s: %v", Repr(v.value), err)
			continue
		}
		if hex.EncodeToString(got) != v.hex {
			t.Errorf("%.80s:\n got %s\nwant %s", Repr(v.value), shortHex(got), v.hex)
		}
		back, err := DecodeExtension(got)
		if err != nil || !Equal(back, v.value) {
			t.Errorf("%.80s: decodes to %.80s, %v", Repr(v.value), Repr(back), err)
		}
	}
	if b, err := EncodeExtension(NewDict()); b != nil || err != nil {
		t.Errorf("empty extension: %x, %v", b, err)
	}
	if b, err := EncodeExtension(nil); b != nil || err != nil {
		t.Errorf("nil extension: %x, %v", b, err)
	}
	if _, err := EncodeExtension(List{}); !errors.Is(err, ErrUnsupportedValue) {
		t.Errorf("list extension: %v", err)
	}
	if d, err := DecodeExtension(nil); err != nil || d.Len() != 0 {
		t.Errorf("DecodeExtension(nil): %v, %v", d, err)
	}
	if _, err := DecodeExtension([]byte("\x80\x03N.")); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeExtension(None): %v", err)
	}
}

// The extensions stored by ZODB 6.3 in the FileStorage fixtures decode and
// re-encode to the same bytes.
func TestExtensionFixtures(t *testing.T) {
	files, _ := filepath.Glob("../../../shared/fixtures/filestorage/*.json")
	if len(files) == 0 {
		t.Fatal("no FileStorage fixtures")
	}
	seen := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fx struct {
			Transactions []struct {
				Tid          string `json:"tid"`
				ExtensionHex string `json:"extension_hex"`
			} `json:"transactions"`
		}
		if err := json.Unmarshal(raw, &fx); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tx := range fx.Transactions {
			p, _ := hex.DecodeString(tx.ExtensionHex)
			d, err := DecodeExtension(p)
			if err != nil {
				t.Errorf("%s %s: %v", filepath.Base(f), tx.Tid, err)
				continue
			}
			again, err := EncodeExtension(d)
			if err != nil || hex.EncodeToString(again) != tx.ExtensionHex {
				t.Errorf("%s %s: %s re-encodes to %x (%v), want %s", filepath.Base(f), tx.Tid, Repr(d), again, err, tx.ExtensionHex)
			}
			seen++
		}
	}
	t.Logf("%d transaction extensions checked", seen)
}
