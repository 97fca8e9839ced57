package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runAsZrsEnv, set in its environment, makes the test binary run as the
// zrs command itself: commands that start a child `zrs` (os.Executable)
// from a test then start this binary, which behaves as zrs would.
const runAsZrsEnv = "ZRS_TEST_RUN_AS_ZRS"

func TestMain(m *testing.M) {
	if os.Getenv(runAsZrsEnv) == "1" {
		os.Exit(run(append([]string{"zrs"}, os.Args[1:]...), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// fixtureDir holds the FileStorage files written by ZODB 6.3.
const fixtureDir = "../../../shared/fixtures/filestorage"

// copyFixture copies a fixture into a temporary directory, so that no
// command can change the shared file; a missing fixture fails the test.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatalf("fixture missing: %v", err)
	}
	path := filepath.Join(t.TempDir(), filepath.Base(name))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runZrs runs the command line in-process and returns its exit status and
// output.
func runZrs(t *testing.T, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	status = run(append([]string{"zrs"}, args...), &out, &errOut)
	return status, out.String(), errOut.String()
}

func TestVerifySound(t *testing.T) {
	for _, c := range []struct {
		name string
		want []string
	}{
		{"basic.fs", []string{"transactions: 23\n", "data records: 51\n", "objects:      18\n",
			"last tid:     03f58e005ddddddd (2024-01-01 00:00:22.000000 UTC)\n", "size:         119292 bytes\n"}},
		{"packed.fs", []string{"transactions: 9\n", "data records: 18\n", "objects:      16\n",
			"last tid:     03f58e0077777777 (2024-01-01 00:00:28.000000 UTC)\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := copyFixture(t, c.name)
			status, out, errOut := runZrs(t, "verify", path)
			if status != exitOK {
				t.Fatalf("status %d, stderr %q", status, errOut)
			}
			if !strings.HasPrefix(out, path+": ok\n") {
				t.Errorf("output does not start with %q:\n%s", path+": ok", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestVerifyDamaged(t *testing.T) {
	path := copyFixture(t, "tail/status-c-last-txn.fs")
	status, out, errOut := runZrs(t, "verify", path)
	if status != exitDamaged {
		t.Errorf("status %d, want %d", status, exitDamaged)
	}
	if out != "" {
		t.Errorf("a damaged file must not be reported ok; stdout %q", out)
	}
	// The message names the file, the problem and its byte offset.
	for _, w := range []string{path, "checkpoint flag was not cleared", "offset 119067"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
}

func TestVerifyUsageErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.fs")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no path", []string{"verify"}, "expected one PATH argument"},
		{"two paths", []string{"verify", "a.fs", "b.fs"}, "expected one PATH argument"},
		{"missing file", []string{"verify", missing}, "no such file"},
		{"bad log level", []string{"--log-level", "loud", "verify", missing}, "unknown --log-level"},
		{"dump without path", []string{"dump"}, "expected one PATH argument"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, errOut := runZrs(t, c.args...)
			if status != exitFailed {
				t.Errorf("status %d, want %d", status, exitFailed)
			}
			if !strings.Contains(errOut, c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, errOut)
			}
		})
	}
}

func TestDump(t *testing.T) {
	path := copyFixture(t, "basic.fs")
	status, out, errOut := runZrs(t, "dump", path)
	if status != exitOK {
		t.Fatalf("status %d, stderr %q", status, errOut)
	}
	for _, w := range []string{
		"Trans #00000 tid=03f58e0000000000 size=154 time=2024-01-01 00:00:00.000000 offset=52\n",
		"  data #00000 oid=0000000000000000 size=64 class=persistent.mapping.PersistentMapping\n",
		"Trans #00022 tid=03f58e005ddddddd",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
}

func TestDumpDamaged(t *testing.T) {
	path := copyFixture(t, "tail/tlen-corrupt-middle.fs")
	status, out, errOut := runZrs(t, "dump", path)
	if status != exitDamaged {
		t.Errorf("status %d, want %d", status, exitDamaged)
	}
	if !strings.Contains(errOut, "offset 113726") {
		t.Errorf("stderr lacks the damage offset:\n%s", errOut)
	}
	// The sound transactions before the damage are still listed.
	if n := strings.Count(out, "Trans #"); n != 11 {
		t.Errorf("%d transactions listed, want 11", n)
	}
}

func TestHelp(t *testing.T) {
	status, out, _ := runZrs(t, "--help")
	if status != exitOK {
		t.Fatalf("status %d", status)
	}
	for _, w := range []string{"verify", "dump", "--log-level"} {
		if !strings.Contains(out, w) {
			t.Errorf("help lacks %q:\n%s", w, out)
		}
	}
}
