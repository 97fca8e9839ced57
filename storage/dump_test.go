package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dumpBack is the field Dump adds to fsdump's record lines.
var dumpBack = regexp.MustCompile(` back=(\d+)$`)

// TestDumpMatchesFsdump compares Dump with ZODB's fsdump output line by
// line: apart from the back= field Dump adds, every line must be the same,
// which covers tids, times, sizes, offsets, metadata, and each record's oid,
// size and class.
func TestDumpMatchesFsdump(t *testing.T) {
	for _, name := range []string{"basic", "packed"} {
		t.Run(name, func(t *testing.T) {
			want := strings.Split(strings.TrimRight(string(readCheckFixture(t, name+".fsdump.txt")), "\n"), "\n")
			var out bytes.Buffer
			if err := Dump(&out, checkFixture(t, name+".fs")); err != nil {
				t.Fatalf("Dump: %v", err)
			}
			got := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			backs := 0
			for i := 0; i < max(len(got), len(want)); i++ {
				var g, w string
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if strings.HasPrefix(g, "  data ") && dumpBack.MatchString(g) {
					backs++
					g = dumpBack.ReplaceAllString(g, "")
				}
				if g != w {
					t.Errorf("line %d:\n got %q\nwant %q", i+1, g, w)
				}
			}
			// Every record without data of its own says where it points:
			// the undo records, and the deletions (back=0).
			if want := strings.Count(string(readCheckFixture(t, name+".fsdump.txt")), " bp=") +
				strings.Count(string(readCheckFixture(t, name+".fsdump.txt")), "class=undo or abort"); backs != want {
				t.Errorf("%d records with back=, want %d", backs, want)
			}
		})
	}
}

func TestDumpBackpointers(t *testing.T) {
	var out bytes.Buffer
	if err := Dump(&out, checkFixture(t, "basic.fs")); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	// The offsets are those of basic.json: "undo temp second" points at
	// temp's record in "create victim and temp"; the deletion has none.
	for _, line := range []string{
		"  data #00000 oid=0000000000000010 size=89 class=persistent.mapping.PersistentMapping bp=03f58e0026666666 back=112906\n",
		"  data #00000 oid=000000000000000f class=undo or abort of object creation back=0\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q", line)
		}
	}
}

func TestDumpDamaged(t *testing.T) {
	var out bytes.Buffer
	err := Dump(&out, checkFixture(t, "tail/status-c-last-txn.fs"))
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Offset != 119067 {
		t.Fatalf("Dump = %v, want a *FormatError at 119067", err)
	}
	// Everything before the damaged transaction is listed.
	if n := strings.Count(out.String(), "Trans #"); n != 22 {
		t.Errorf("%d transactions listed before the damage, want 22", n)
	}
}

func TestDumpMissingFile(t *testing.T) {
	err := Dump(&bytes.Buffer{}, filepath.Join(t.TempDir(), "nope.fs"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Dump = %v, want ErrNotExist", err)
	}
}

func TestDumpPickleClass(t *testing.T) {
	for _, c := range []struct {
		name   string
		pickle string
		want   string
	}{
		{"GLOBAL, protocol 3", "\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.", "persistent.mapping.PersistentMapping"},
		{"GLOBAL, protocol 1", "cBTrees.Length\nLength\nq\x01.", "BTrees.Length.Length"},
		{"(class, args)", "\x80\x03cfoo.bar\nBaz\nq\x00)\x86q\x01.", "foo.bar.Baz"},
		{"((module, name), args)", "\x80\x02X\x03\x00\x00\x00fooX\x03\x00\x00\x00Bar\x86)\x86.", "foo.Bar"},
		{"(module, name)", "(U\x03fooU\x03Bart.", "foo.Bar"},
		{"not a class", "\x80\x03K\x05.", "?"},
		{"truncated", "\x80\x03cpersist", "?"},
		{"garbage", "\xff\xfe", "?"},
	} {
		if got := pickleClass([]byte(c.pickle)); got != c.want {
			t.Errorf("%s: pickleClass = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestDumpPyRepr(t *testing.T) {
	for _, c := range []struct{ in, prefix, want string }{
		{"", "b", "b''"},
		{"alice", "b", "b'alice'"},
		{"it's", "b", `b"it's"`},
		{`it's "x"`, "b", `b'it\'s "x"'`},
		{"a\\b\t\n\r\x00\x7f", "b", `b'a\\b\t\n\r\x00\x7f'`},
		{"Jos\xc3\xa9", "b", `b'Jos\xc3\xa9'`},
		{" ", "", "' '"},
		{"p", "", "'p'"},
	} {
		if got := pyRepr(c.in, c.prefix); got != c.want {
			t.Errorf("pyRepr(%q, %q) = %s, want %s", c.in, c.prefix, got, c.want)
		}
	}
}
