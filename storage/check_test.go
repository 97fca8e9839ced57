package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// checkFixtureDir holds the files written by ZODB 6.3 (see its README.md).
const checkFixtureDir = "../../shared/fixtures/filestorage"

// checkFixture returns the path of a fixture, failing the test when it is
// missing: the fixtures are part of the test, not an optional extra.
func checkFixture(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(checkFixtureDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture missing: %v", err)
	}
	return p
}

func readCheckFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(checkFixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureSummary is the part of NAME.json the checker's report is compared
// with.
type fixtureSummary struct {
	FileSize         int64  `json:"file_size"`
	LastTid          string `json:"last_tid"`
	ObjectCount      int    `json:"object_count"`
	TransactionCount int    `json:"transaction_count"`
	Transactions     []struct {
		// Records are objects in most files and arrays in many.json; only
		// their number matters here.
		Records []json.RawMessage `json:"records"`
	} `json:"transactions"`
}

func TestCheckSoundFixtures(t *testing.T) {
	for _, name := range []string{"basic", "packed", "packed.before", "many"} {
		t.Run(name, func(t *testing.T) {
			var want fixtureSummary
			if err := json.Unmarshal(readCheckFixture(t, name+".json"), &want); err != nil {
				t.Fatal(err)
			}
			records := 0
			for _, tx := range want.Transactions {
				records += len(tx.Records)
			}
			rep, err := Check(checkFixture(t, name+".fs"))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			got := *rep
			wantRep := CheckReport{
				Size:         want.FileSize,
				Transactions: want.TransactionCount,
				DataRecords:  records,
				Objects:      want.ObjectCount,
				LastTid:      mustParseTid(t, want.LastTid),
			}
			if got != wantRep {
				t.Errorf("report %+v, want %+v", got, wantRep)
			}
		})
	}
}

func mustParseTid(t testing.TB, s string) Tid {
	t.Helper()
	tid, err := ParseTid(s)
	if err != nil {
		t.Fatal(err)
	}
	return tid
}

// tailVariant is one damaged copy of basic.fs in tail/expectations.json.
type tailVariant struct {
	File   *string `json:"file"`
	Name   string  `json:"name"`
	Damage struct {
		Kind     string `json:"kind"`
		At       int64  `json:"at"`
		Offset   int64  `json:"offset"`
		New      any    `json:"new"` // a one-character string or a byte value
		BytesHex string `json:"bytes_hex"`
	} `json:"damage"`
	Size   int64  `json:"size"`
	Sha256 string `json:"sha256"`
	Fstest struct {
		Message string `json:"message"`
	} `json:"fstest"`
}

// tailVariants loads the damaged variants and returns each with the bytes
// of its file: the stored one, or basic.fs with the recipe applied. Both
// are checked against the recorded sha256 so that a fixture or recipe
// mistake cannot pass unnoticed.
func tailVariants(t testing.TB) ([]tailVariant, [][]byte) {
	t.Helper()
	var exp struct {
		Variants []tailVariant `json:"variants"`
	}
	if err := json.Unmarshal(readCheckFixture(t, "tail/expectations.json"), &exp); err != nil {
		t.Fatal(err)
	}
	if len(exp.Variants) == 0 {
		t.Fatal("no variants in tail/expectations.json")
	}
	basic := readCheckFixture(t, "basic.fs")
	var files [][]byte
	for _, v := range exp.Variants {
		var b []byte
		if v.File != nil {
			b = readCheckFixture(t, "tail/"+*v.File)
		} else {
			b = applyDamage(t, basic, v)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != v.Sha256 || int64(len(b)) != v.Size {
			t.Fatalf("%s: sha256 %s size %d, want %s size %d", v.Name, got, len(b), v.Sha256, v.Size)
		}
		files = append(files, b)
	}
	return exp.Variants, files
}

func applyDamage(t testing.TB, basic []byte, v tailVariant) []byte {
	t.Helper()
	b := append([]byte(nil), basic...)
	d := v.Damage
	switch d.Kind {
	case "truncate":
		return b[:d.At]
	case "append":
		extra, err := hex.DecodeString(d.BytesHex)
		if err != nil {
			t.Fatal(err)
		}
		return append(b, extra...)
	case "status", "byte":
		switch n := d.New.(type) {
		case string:
			if len(n) != 1 {
				t.Fatalf("%s: new value %q", v.Name, n)
			}
			b[d.Offset] = n[0]
		case float64:
			b[d.Offset] = byte(n)
		default:
			t.Fatalf("%s: new value %v", v.Name, d.New)
		}
		return b
	}
	t.Fatalf("%s: unknown damage kind %q", v.Name, d.Kind)
	return nil
}

var fstestOffset = regexp.MustCompile(`\bat (\d+)`)

func TestCheckDamagedVariants(t *testing.T) {
	variants, files := tailVariants(t)
	dir := t.TempDir()
	for i, v := range variants {
		t.Run(v.Name, func(t *testing.T) {
			m := fstestOffset.FindStringSubmatch(v.Fstest.Message)
			if m == nil {
				t.Fatalf("no offset in fstest message %q", v.Fstest.Message)
			}
			wantOff, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, v.Name)
			if err := os.WriteFile(path, files[i], 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := Check(path)
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Check = %v, want a *FormatError (fstest: %s)", err, v.Fstest.Message)
			}
			if fe.Offset != wantOff {
				t.Errorf("offset %d, want %d: %v (fstest: %s)", fe.Offset, wantOff, err, v.Fstest.Message)
			}
			if fe.Path != path {
				t.Errorf("error names %q, want %q", fe.Path, path)
			}
			// The partial report covers exactly the transactions before
			// the damage, all of which start before it.
			if rep == nil || rep.Transactions == 0 || rep.Size != v.Size {
				t.Errorf("partial report %+v", rep)
			}
			t.Logf("%v (fstest: %s)", err, v.Fstest.Message)
		})
	}
}

// TestCheckStricterThanFstest covers damage fstest lets through but that
// would make the storage serve wrong data.
func TestCheckStricterThanFstest(t *testing.T) {
	basic := readCheckFixture(t, "basic.fs")
	put64 := func(b []byte, off int64, v uint64) {
		for i := 7; i >= 0; i-- {
			b[off+int64(i)] = byte(v)
			v >>= 8
		}
	}
	cases := []struct {
		name    string
		damage  func(b []byte)
		wantOff int64
		reason  string // part of the expected reason
	}{
		// "undo temp second" at 114227 points back at temp's record at
		// 112906; 113222 is root's record in "unlink victim".
		{"backpointer to another oid", func(b []byte) { put64(b, 114227+DataHeaderSize, 113222) }, 114227, "does not point at an earlier data record of oid 0000000000000010"},
		{"backpointer into a record", func(b []byte) { put64(b, 114227+DataHeaderSize, 112910) }, 114227, "does not point at an earlier data record"},
		{"backpointer forward", func(b []byte) { put64(b, 114227+DataHeaderSize, 114300) }, 114227, "invalid backpointer"},
		// Record 223 (oid 0 in "create app objects") has prev 52.
		{"previous pointer elsewhere", func(b []byte) { put64(b, 273+16, 4) }, 273, "incorrect previous pointer: record says 4, index says 52"},
		{"record tid", func(b []byte) { b[273+15]++ }, 273, "differs from its transaction's 03f58e0004444444"},
		{"version length", func(b []byte) { b[273+33] = 1 }, 273, "version"},
		{"empty file", func(b []byte) {}, 0, "empty file"},
		{"magic", func(b []byte) { b[3] = '9' }, 0, "invalid file header"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := append([]byte(nil), basic...)
			if c.name == "empty file" {
				b = nil
			}
			c.damage(b)
			path := filepath.Join(dir, "damaged.fs")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Check(path)
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Check = %v, want a *FormatError", err)
			}
			if fe.Offset != c.wantOff || !strings.Contains(fe.Reason, c.reason) {
				t.Errorf("got %v, want offset %d and a reason containing %q", err, c.wantOff, c.reason)
			}
		})
	}
}

func TestCheckMissingFile(t *testing.T) {
	_, err := Check(filepath.Join(t.TempDir(), "nope.fs"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Check = %v, want ErrNotExist", err)
	}
}

// TestCheckNeverPanics runs Check over many cut and bit-flipped copies of
// basic.fs: each must give nil or a *FormatError.
func TestCheckNeverPanics(t *testing.T) {
	basic := readCheckFixture(t, "basic.fs")
	path := filepath.Join(t.TempDir(), "fuzz.fs")
	rng := rand.New(rand.NewSource(1))
	try := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Check(path)
		var fe *FormatError
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("Check = %v, want nil or a *FormatError", err)
		}
	}
	for cut := 0; cut < len(basic); cut += 1 + rng.Intn(97) {
		try(basic[:cut])
	}
	for range 300 {
		b := append([]byte(nil), basic...)
		for range 1 + rng.Intn(4) {
			b[rng.Intn(len(b))] ^= byte(1 + rng.Intn(255))
		}
		try(b)
	}
}

// FuzzCheck looks for inputs that make Check panic or fail with anything
// but a *FormatError; the seeds also run as part of go test.
func FuzzCheck(f *testing.F) {
	f.Add(readCheckFixture(f, "packed.fs"))
	f.Add(readCheckFixture(f, "tail/tlen-corrupt-middle.fs")[:2000])
	f.Add([]byte("FS30"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "fuzz.fs")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Check(path)
		var fe *FormatError
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("Check = %v, want nil or a *FormatError", err)
		}
	})
}
