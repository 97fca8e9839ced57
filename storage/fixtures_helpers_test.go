package storage

// Helpers shared by the ZODB compatibility tests (fixture_test.go,
// tail_test.go, replay_test.go). The fixtures were written by Python ZODB
// 6.3; see ../../shared/fixtures/filestorage/README.md.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	ogórek "github.com/kisielk/og-rek"
)

// fxDirRel is the fixture directory relative to the storage package.
const fxDirRel = "../../shared/fixtures/filestorage"

// fxDir returns the fixture directory. A missing directory fails the test:
// the compatibility tests must never be skipped silently.
func fxDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(fxDirRel)
	if err != nil {
		t.Fatalf("fixture directory: %v", err)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		t.Fatalf("ZODB fixture directory %s is missing (%v): the compatibility tests cannot run", dir, err)
	}
	return dir
}

// fxRead reads a fixture file (relative to the fixture directory).
func fxRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fxDir(t), name))
	if err != nil {
		t.Fatalf("read fixture %s: %v", name, err)
	}
	return b
}

// fxExists reports whether a fixture file exists.
func fxExists(t testing.TB, name string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(fxDir(t), name))
	return err == nil
}

// fxLoadJSON decodes a fixture JSON file into v.
func fxLoadJSON(t testing.TB, name string, v any) {
	t.Helper()
	if err := json.Unmarshal(fxRead(t, name), v); err != nil {
		t.Fatalf("decode fixture %s: %v", name, err)
	}
}

// fxWrite writes a writable copy of data at dir/name and returns its path.
func fxWrite(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	return p
}

// fxCopy copies fixture src to dir/dst (writable) and returns the path.
func fxCopy(t testing.TB, src, dir, dst string) string {
	t.Helper()
	return fxWrite(t, dir, dst, fxRead(t, src))
}

func fxSha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fxFileSha returns the size and sha256 of a file.
func fxFileSha(t testing.TB, path string) (int64, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return int64(len(b)), fxSha(b)
}

func fxTid(t testing.TB, s string) Tid {
	t.Helper()
	v, err := ParseTid(s)
	if err != nil {
		t.Fatalf("bad tid in fixture: %v", err)
	}
	return v
}

func fxOid(t testing.TB, s string) Oid {
	t.Helper()
	v, err := ParseOid(s)
	if err != nil {
		t.Fatalf("bad oid in fixture: %v", err)
	}
	return v
}

func fxHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in fixture: %v", err)
	}
	return b
}

// fxFirstDiff returns the first offset at which a and b differ, or -1.
func fxFirstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return n
	}
	return -1
}

// fxCompareBytes fails with the first differing offset when got != want.
func fxCompareBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	off := fxFirstDiff(got, want)
	ctx := func(b []byte) string {
		lo, hi := max(0, off-8), min(len(b), off+16)
		if lo >= hi {
			return "(end)"
		}
		return hex.EncodeToString(b[lo:hi])
	}
	t.Errorf("%s differs: got %d bytes, want %d bytes; first difference at offset %d\n  got  [%d:]: %s\n  want [%d:]: %s",
		what, len(got), len(want), off, max(0, off-8), ctx(got), max(0, off-8), ctx(want))
}

// fxDirState maps every file name in dir to "size:sha256".
func fxDirState(t testing.TB, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	out := map[string]string{}
	for _, e := range ents {
		size, sha := fxFileSha(t, filepath.Join(dir, e.Name()))
		out[e.Name()] = fmt.Sprintf("%d:%s", size, sha)
	}
	return out
}

// fxTrFiles returns the NAME.trN files next to path, sorted by name.
func fxTrFiles(t testing.TB, path string) []string {
	t.Helper()
	m, err := filepath.Glob(path + ".tr*")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

// fxPickleJSON decodes a pickled extension dict (empty means {}) and
// returns it in the JSON form the fixtures use: bytes as {"$bytes": hex},
// ints as float64, None as nil.
func fxPickleJSON(ext []byte) (any, error) {
	if len(ext) == 0 {
		return map[string]any{}, nil
	}
	v, err := ogórek.NewDecoder(bytes.NewReader(ext)).Decode()
	if err != nil {
		return nil, err
	}
	return fxNormPickle(v)
}

func fxNormPickle(v any) (any, error) {
	switch x := v.(type) {
	case nil, ogórek.None:
		return nil, nil
	case bool, string:
		return x, nil
	case int64:
		return float64(x), nil
	case int:
		return float64(x), nil
	case float64:
		return x, nil
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return f, nil
	case ogórek.Bytes:
		return map[string]any{"$bytes": hex.EncodeToString([]byte(x))}, nil
	case ogórek.ByteString:
		return string(x), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := fxNormPickle(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case ogórek.Tuple:
		return fxNormPickle([]any(x))
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("non-string dict key %#v", k)
			}
			n, err := fxNormPickle(e)
			if err != nil {
				return nil, err
			}
			out[ks] = n
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected pickle value %T", v)
}

// fxCanon returns the canonical JSON text of v (object keys sorted).
func fxCanon(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// fxCanonRaw canonicalizes raw JSON.
func fxCanonRaw(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "<" + err.Error() + ">"
	}
	return fxCanon(v)
}

// fxShaMatches compares data with a fixture sha256, which may be a prefix
// (many.json stores the first 16 hex digits).
func fxShaMatches(data []byte, want string) bool {
	return want != "" && strings.HasPrefix(fxSha(data), want)
}
