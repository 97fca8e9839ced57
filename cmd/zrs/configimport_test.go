package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// zconfigFixtures holds the ZConfig files of node's tests: zc.zrs's README
// examples, a Plone zeo.conf and a zc.zrs secondary's zeo.conf.
const zconfigFixtures = "../../node/testdata/zconfig"

// TestConfigImportFixtures converts every fixture with `zrs config import`,
// to a file and to stdout, and checks that `zrs config check` accepts the
// result.
func TestConfigImportFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(zconfigFixtures, "*.conf"))
	if err != nil || len(files) < 4 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	noteLine := regexp.MustCompile(`^` + regexp.QuoteMeta(zconfigFixtures) + `/[^:]+\.conf(:\d+)?: `)
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "node.hcl")
			status, stdout, stderr := runZrs(t, "config", "import", "-o", out, in)
			if status != exitOK {
				t.Fatalf("import: status %d, stderr:\n%s", status, stderr)
			}
			if stdout != "" {
				t.Errorf("with -o, stdout is %q", stdout)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			for _, l := range lines {
				if !noteLine.MatchString(l) {
					t.Errorf("stderr line %q does not start with the file and line", l)
				}
			}
			if last := lines[len(lines)-1]; !strings.Contains(last, "wrote "+out) {
				t.Errorf("last stderr line %q does not name the output file", last)
			}
			status, stdout, stderr = runZrs(t, "config", "check", out)
			if status != exitOK || stdout != out+": ok\n" {
				hcl, _ := os.ReadFile(out)
				t.Fatalf("config check: status %d, stdout %q, stderr %q\n%s", status, stdout, stderr, hcl)
			}
			// Without -o the configuration goes to stdout.
			written, _ := os.ReadFile(out)
			status, stdout, _ = runZrs(t, "config", "import", in)
			if status != exitOK || stdout != string(written) {
				t.Errorf("to stdout: status %d, output differs from the file:\n%s", status, stdout)
			}
		})
	}
}

func TestConfigImportPlone(t *testing.T) {
	status, stdout, stderr := runZrs(t, "config", "import", filepath.Join(zconfigFixtures, "plone-zeo.conf"))
	if status != exitOK {
		t.Fatalf("status %d, stderr:\n%s", status, stderr)
	}
	for _, w := range []string{`path = "/srv/plone/var/filestorage/Data.fs"`, `name = "1"`, `listen    = "0.0.0.0:8100"`, `level = "info"`} {
		if !strings.Contains(stdout, w) {
			t.Errorf("output lacks %q:\n%s", w, stdout)
		}
	}
	for _, w := range []string{"plone-zeo.conf:9: <zeo> pack-gc true: not carried over", "plone-zeo.conf:14: <filestorage> blob-dir /srv/plone/var/blobstorage: not carried over"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
}

func TestConfigImportErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	malformed := write("malformed.conf", "<zeo>\n  address 8100\n</zeo>\n<filestorage 1>\n  path /d/Data.fs\n</zeo>\n")
	invalid := write("invalid.conf", "<zeo>\naddress 5000\n</zeo>\n<zrs>\nreplicate-to 127.0.0.1:5000\nreplicate-from 5000\n<filestorage>\npath /d\n</filestorage>\n</zrs>\n")
	out := filepath.Join(dir, "out.hcl")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"malformed", []string{"-o", out, malformed}, []string{malformed + ":6: unbalanced section end </zeo>"}},
		{"rejected by validation", []string{invalid}, []string{"the converted configuration is not valid", "replicate_from and replicate_to must differ", `replicate_from = "127.0.0.1:5000"`}},
		{"missing file", []string{filepath.Join(dir, "nope.conf")}, []string{"nope.conf"}},
		{"no argument", nil, []string{"expected one PATH argument"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, stdout, stderr := runZrs(t, append([]string{"config", "import"}, c.args...)...)
			if status != exitFailed {
				t.Errorf("status %d, want %d", status, exitFailed)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed import wrote %s", out)
	}
}
