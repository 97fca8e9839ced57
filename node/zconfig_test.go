package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// zcSummary renders the settings an import produces, one per line, so
// that table cases compare them as a whole.
func zcSummary(c *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "storage %s name=%s\n", c.Storage.Path, c.Storage.Name)
	fmt.Fprintf(&b, "zeo %s read_only=%t protocol=%s timeout=%s\n", c.ZEO.Listen, c.ZEO.ReadOnly, c.ZEO.Protocol, c.ZEO.TransactionTimeout)
	fmt.Fprintf(&b, "log %s\n", c.Log.Level)
	if r := c.Replication; r != nil {
		fmt.Fprintf(&b, "replication to=%s from=%s keep_alive=%s protocol=%s\n", r.ReplicateTo, r.ReplicateFrom, r.KeepAliveDelay, r.Protocol)
	}
	return b.String()
}

const zcBase = "storage /d/Data.fs name=1\nzeo 0.0.0.0:8100 read_only=false protocol=pickle timeout=\nlog info\n"

func TestImportZConfig(t *testing.T) {
	env := map[string]string{"ZEO_HOME": "/opt/zeo"}
	for _, c := range []struct {
		name string
		src  string
		want string
		// notes are "LINE: substring", one for each note, in order.
		notes []string
	}{
		{name: "minimal", src: "<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath /d/Data.fs\n</filestorage>\n", want: zcBase},
		{name: "address forms", src: "<zeo>\n  address 127.0.0.1:9100\n</zeo>\n<filestorage 1>\n  path /d/Data.fs\n</filestorage>\n",
			want: strings.Replace(zcBase, "0.0.0.0:8100", "127.0.0.1:9100", 1)},
		{name: "address colon port", src: "<zeo>\naddress :8100\n</zeo>\n<filestorage>\npath /d/Data.fs\n</filestorage>\n", want: zcBase},
		{name: "address host lowercased", src: "<zeo>\naddress ZEO.Example.COM:8100\n</zeo>\n<filestorage>\npath /d/Data.fs\n</filestorage>\n",
			want: strings.Replace(zcBase, "0.0.0.0:8100", "zeo.example.com:8100", 1)},
		{name: "address ipv6", src: "<zeo>\naddress [::1]:8100\n</zeo>\n<filestorage>\npath /d/Data.fs\n</filestorage>\n",
			want: strings.Replace(zcBase, "0.0.0.0:8100", "[::1]:8100", 1)},
		{name: "address unix socket", src: "<zeo>\naddress /run/zeo/zeo.sock\n</zeo>\n<filestorage>\npath /d/Data.fs\n</filestorage>\n",
			want: strings.Replace(zcBase, "0.0.0.0:8100", "/run/zeo/zeo.sock", 1)},
		{name: "zeo options carried over", src: `<ZEO>
  Address 8100
  read-only on
  msgpack yes
  transaction-timeout 30
  client-conflict-resolution false
</ZEO>
<filestorage>
  path /d/Data.fs
</filestorage>
`, want: "storage /d/Data.fs name=1\nzeo 0.0.0.0:8100 read_only=true protocol=msgpack timeout=30s\nlog info\n"},
		{name: "zeo options reported", src: `<zeo>
  address 8100
  invalidation-queue-size 100
  invalidation-age 3600
  pid-filename /var/run/zeo.pid
  client-conflict-resolution true
  monitor-address 8101
  authentication-protocol digest
  authentication-database /etc/zeo/auth
  authentication-realm zope
  transaction-timeout 0
  msgpack false
  color blue
  <ssl>
    certificate /etc/ssl/zeo.pem
    authenticate SIGNED
  </ssl>
</zeo>
<filestorage>
  path /d/Data.fs
</filestorage>
`, want: zcBase, notes: []string{
			"3: invalidation-queue-size 100: not carried over",
			"4: invalidation-age 3600: not carried over",
			"5: pid-filename: not carried over",
			"6: client-conflict-resolution true: not carried over",
			"7: monitor-address: not carried over",
			"8: authentication-protocol: not carried over",
			"9: authentication-database: not carried over",
			"10: authentication-realm: not carried over",
			"13: color: unknown option",
			"14: <ssl>: not carried over",
		}},
		{name: "filestorage options", src: `<zeo>
  address 8100
</zeo>
<filestorage Main>
  path /d/Data.fs
  create false
  read-only true
  quota 10GB
  packer mypackage.packer
  pack-gc false
  pack-keep-old true
  blob-dir /d/blobs
  frobnicate yes
</filestorage>
`, want: "storage /d/Data.fs name=main\nzeo 0.0.0.0:8100 read_only=true protocol=pickle timeout=\nlog info\n", notes: []string{
			"8: quota 10GB: not carried over",
			"9: packer mypackage.packer: not carried over",
			"10: pack-gc false: not carried over",
			"11: pack-keep-old true: not carried over",
			"12: blob-dir /d/blobs: not carried over: zrs does not serve blobs",
			"13: frobnicate: unknown option",
		}},
		{name: "filestorage create", src: "<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath /d/Data.fs\ncreate true\n</filestorage>\n",
			want: zcBase, notes: []string{"6: create true: not carried over: zrs never truncates"}},
		{name: "zrs options", src: `%import zc.zrs
<zeo>
  address 8100
</zeo>
<zrs>
  replicate-to 5000
  replicate-from [fe80::1]:5000
  keep-alive-delay 0
  check-checksums false
  zookeeper zk1:2181
  <filestorage>
    path /d/Data.fs
  </filestorage>
</zrs>
`, want: zcBase + "replication to=0.0.0.0:5000 from=[fe80::1]:5000 keep_alive=60s protocol=zrs2.0\n", notes: []string{
			"8: keep-alive-delay 0: not carried over",
			"9: check-checksums false: not carried over",
			"10: zookeeper: not carried over",
		}},
		{name: "zrs secondary from port only", src: "<zeo>\naddress 8100\n</zeo>\n<zrs>\nreplicate-from 5000\n<filestorage>\npath /d/Data.fs\n</filestorage>\n</zrs>\n",
			want: zcBase + "replication to= from=127.0.0.1:5000 keep_alive=60s protocol=zrs2.0\n"},
		{name: "zrs without addresses", src: "<zeo>\naddress 8100\n</zeo>\n<zrs>\n<filestorage>\npath /d/Data.fs\n</filestorage>\n</zrs>\n",
			want: zcBase, notes: []string{"4: <zrs> has neither replicate-to nor replicate-from"}},
		{name: "zrs around blobstorage", src: `<zeo>
  address 8100
</zeo>
<zrs 1>
  replicate-to 5000
  <blobstorage>
    blob-dir /d/blobs
    <filestorage>
      path /d/Data.fs
    </filestorage>
  </blobstorage>
</zrs>
`, want: zcBase + "replication to=0.0.0.0:5000 from= keep_alive=60s protocol=zrs\n", notes: []string{
			"7: <blobstorage> blob-dir /d/blobs: not carried over: zrs does not serve blobs",
		}},
		{name: "eventlog", src: `<zeo>
  address 8100
</zeo>
<filestorage>
  path /d/Data.fs
</filestorage>
<eventlog>
  level DEBUG
  propagate false
  <logfile>
    path /var/log/zeo.log
  </logfile>
  <syslog>
    facility local0
  </syslog>
</eventlog>
`, want: strings.Replace(zcBase, "log info", "log debug", 1), notes: []string{
			"9: <eventlog> propagate: not carried over",
			"10: handler <logfile> /var/log/zeo.log: not carried over",
			"13: handler <syslog>: not carried over",
		}},
		{name: "eventlog approximate levels", src: "<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath /d/Data.fs\n</filestorage>\n<eventlog>\nlevel blather\n</eventlog>\n",
			want: strings.Replace(zcBase, "log info", "log debug", 1), notes: []string{`8: level blather: approximated as "debug"`}},
		{name: "eventlog numeric level", src: "<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath /d/Data.fs\n</filestorage>\n<eventlog>\nlevel 30\n</eventlog>\n",
			want: strings.Replace(zcBase, "log info", "log warn", 1)},
		{name: "eventlog critical", src: "<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath /d/Data.fs\n</filestorage>\n<eventlog>\nlevel critical\n</eventlog>\n",
			want: strings.Replace(zcBase, "log info", "log error", 1), notes: []string{`8: level critical: approximated as "error"`}},
		{name: "runner, other storages and imports", src: `%import tempstorage
<zeo>
  address 8100
</zeo>
<mappingstorage temp>
</mappingstorage>
<filestorage 1>
  path /d/Data.fs
</filestorage>
<filestorage 2>
  path /d/Other.fs
</filestorage>
<runner>
  program /bin/runzeo
</runner>
`, want: zcBase, notes: []string{
			"1: %import tempstorage: not carried over",
			"5: <mappingstorage>: not converted: zrs serves FileStorage only",
			`10: <filestorage 2>: not converted: a zrs node serves one storage (storage "1" from line 7`,
			"13: <runner>: zdaemon's section not carried over",
		}},
		{name: "defines and substitution", src: `# comment
%define VAR /d
%define Dollar a$$b
%define FULL ${var}/Data.fs
<zeo>
  address 8100
</zeo>
<filestorage>
  path $FULL
</filestorage>
`, want: zcBase},
		{name: "environment", src: "<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath $(ZEO_HOME)/Data.fs\n</filestorage>\n",
			want: strings.Replace(zcBase, "/d/Data.fs", "/opt/zeo/Data.fs", 1)},
		{name: "template sequences escaped", src: "<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath /d/$${y}/%{z} \"q\" \\ # not a comment\n</filestorage>\n",
			want: strings.Replace(zcBase, "/d/Data.fs", `/d/${y}/%{z} "q" \ # not a comment`, 1)},
		{name: "empty section", src: "<zeo>\naddress 8100\n</zeo>\n<mappingstorage/>\n<filestorage>\npath /d/Data.fs\n</filestorage>\n",
			want: zcBase, notes: []string{"4: <mappingstorage>: not converted"}},
		{name: "no zeo section", src: "<filestorage>\npath /d/Data.fs\n</filestorage>\n",
			want: strings.Replace(zcBase, "0.0.0.0:8100", "127.0.0.1:8100", 1), notes: []string{"0: no <zeo> section"}},
		{name: "crlf line ends", src: "<zeo>\r\n  address 8100\r\n</zeo>\r\n<filestorage>\r\n  path /d/Data.fs\r\n</filestorage>\r\n", want: zcBase},
		{name: "pack-gc in zeo", src: "<zeo>\naddress 8100\npack-gc true\n</zeo>\n<filestorage>\npath /d/Data.fs\n</filestorage>\n",
			want: zcBase, notes: []string{"3: <zeo> pack-gc true: not carried over"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := ImportZConfig("zeo.conf", []byte(c.src), ZConfigOptions{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if got := zcSummary(res.Config); got != c.want {
				t.Errorf("converted to\n%s\nwant\n%s\nHCL:\n%s", got, c.want, res.HCL)
			}
			checkNotes(t, res.Notes, c.notes)
		})
	}
}

func checkNotes(t *testing.T, got []ZConfigNote, want []string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		line, text, _ := strings.Cut(want[i], ": ")
		ok = fmt.Sprint(got[i].Line) == line && strings.Contains(got[i].Text, text)
	}
	if !ok {
		var b strings.Builder
		for _, n := range got {
			fmt.Fprintf(&b, "  %d: %s\n", n.Line, n.Text)
		}
		t.Errorf("notes:\n%swant %d matching %q", b.String(), len(want), want)
	}
}

func TestImportZConfigErrors(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"unclosed section", "<zeo>\naddress 8100\n", "zeo.conf:1: section <zeo> is not closed"},
		{"unbalanced end", "<zeo>\naddress 8100\n</filestorage>\n", "zeo.conf:3: unbalanced section end </filestorage>"},
		{"unexpected end", "</zeo>\n", "zeo.conf:1: unexpected section end"},
		{"malformed start", "<zeo\naddress 8100\n</zeo>\n", "zeo.conf:1: malformed section start"},
		{"malformed header", "<file storage 1>\n</file>\n", "zeo.conf:1: malformed section header"},
		{"malformed end", "<zeo>\n</zeo\n", "zeo.conf:2: malformed section end"},
		{"unknown directive", "%frob x\n", "zeo.conf:1: unknown directive %frob"},
		{"directive without argument", "%import\n", "zeo.conf:1: missing argument to %import"},
		{"include", "%include other.conf\n", "zeo.conf:1: %include is not supported"},
		{"redefine", "%define A 1\n%define a 2\n", "zeo.conf:2: cannot redefine"},
		{"bad define name", "%define 1A x\n", "zeo.conf:1: \"1A\" is not a legal substitution name"},
		{"undefined", "<zeo>\naddress 8100\n</zeo>\n<filestorage>\npath $NOPE/Data.fs\n</filestorage>\n", "zeo.conf:5: $NOPE is not defined"},
		{"defined later", "<filestorage>\npath ${x}\n</filestorage>\n%define x X\n", "zeo.conf:2: $x is not defined"},
		{"lone dollar", "<filestorage>\npath /d/$\n</filestorage>\n", "zeo.conf:2: illegal lone '$'"},
		{"unclosed brace", "%define x 1\n<filestorage>\npath ${x\n</filestorage>\n", "zeo.conf:3: '${x' not followed by '}'"},
		{"env unset", "<filestorage>\npath $(NOPE)\n</filestorage>\n", "zeo.conf:2: environment variable \"NOPE\""},
		{"bad boolean", "<zeo>\naddress 8100\nread-only maybe\n</zeo>\n<filestorage>\npath /d\n</filestorage>\n", "zeo.conf:3: read-only: \"maybe\" is not a boolean"},
		{"bad address", "<zeo>\naddress zeo.example.com\n</zeo>\n<filestorage>\npath /d\n</filestorage>\n", "zeo.conf:2: <zeo> address: \"zeo.example.com\" has no port"},
		{"bad port", "<zeo>\naddress host:http\n</zeo>\n<filestorage>\npath /d\n</filestorage>\n", "zeo.conf:2: <zeo> address: \"host:http\": \"http\" is not a port number"},
		{"no address", "<zeo>\nread-only true\n</zeo>\n<filestorage>\npath /d\n</filestorage>\n", "zeo.conf:1: <zeo> has no address"},
		{"two zeo sections", "<zeo>\naddress 1\n</zeo>\n<zeo>\naddress 2\n</zeo>\n", "zeo.conf:4: a second <zeo> section (the first is on line 1)"},
		{"no path", "<zeo>\naddress 8100\n</zeo>\n<filestorage>\n</filestorage>\n", "zeo.conf:4: <filestorage> has no path"},
		{"no storage", "<zeo>\naddress 8100\n</zeo>\n<mappingstorage>\n</mappingstorage>\n", "zeo.conf: no <filestorage> section found"},
		{"zrs without storage", "<zrs>\nreplicate-to 5000\n</zrs>\n", "zeo.conf:1: <zrs> must hold exactly one storage section, found 0"},
		{"bad keep-alive", "<zrs>\nkeep-alive-delay soon\n<filestorage>\npath /d\n</filestorage>\n</zrs>\n", "zeo.conf:2: <zrs> keep-alive-delay \"soon\""},
		{"bad timeout", "<zeo>\naddress 1\ntransaction-timeout 1.5\n</zeo>\n", "zeo.conf:3: <zeo> transaction-timeout \"1.5\""},
		{"bad level", "<eventlog>\nlevel loud\n</eventlog>\n", "zeo.conf:2: <eventlog> level \"loud\""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ImportZConfig("zeo.conf", []byte(c.src), ZConfigOptions{})
			var ze *ZConfigError
			if !errors.As(err, &ze) {
				t.Fatalf("error %v (%T), want a *ZConfigError", err, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
}

// TestImportZConfigRejected: a conversion our validation rejects returns
// the HCL and the diagnostics.
func TestImportZConfigRejected(t *testing.T) {
	src := "<zeo>\naddress 5000\n</zeo>\n<zrs>\nreplicate-to 127.0.0.1:5000\nreplicate-from 5000\n<filestorage>\npath /d\n</filestorage>\n</zrs>\n"
	res, err := ImportZConfig("zeo.conf", []byte(src), ZConfigOptions{})
	var diags hcl.Diagnostics
	if !errors.As(err, &diags) {
		t.Fatalf("error %v (%T), want hcl.Diagnostics", err, err)
	}
	if !strings.Contains(err.Error(), "replicate_from and replicate_to must differ") {
		t.Errorf("error %q", err)
	}
	if res == nil || !strings.Contains(string(res.HCL), `replicate_from = "127.0.0.1:5000"`) {
		t.Errorf("the rejected HCL is not returned: %+v", res)
	}
}

// TestImportZConfigFixtures converts the files in testdata/zconfig: zc.zrs's
// README examples verbatim, a Plone zeo.conf and a zc.zrs secondary's.
func TestImportZConfigFixtures(t *testing.T) {
	for _, c := range []struct {
		file, want string
		notes      []string
	}{
		{"zrs-readme-primary.conf",
			"storage /path/to/data/file name=1\nzeo 127.0.0.1:8100 read_only=false protocol=pickle timeout=\nlog info\n" +
				"replication to=0.0.0.0:5000 from= keep_alive=60s protocol=zrs\n",
			[]string{"0: no <zeo> section"}},
		{"zrs-readme-secondary.conf",
			"storage /path/to/secondary/data/file name=1\nzeo 127.0.0.1:8100 read_only=false protocol=pickle timeout=\nlog info\n" +
				"replication to=0.0.0.0:5000 from=primary-host:5000 keep_alive=60s protocol=zrs2.0\n",
			[]string{"0: no <zeo> section"}},
		{"plone-zeo.conf",
			"storage /srv/plone/var/filestorage/Data.fs name=1\nzeo 0.0.0.0:8100 read_only=false protocol=pickle timeout=\nlog info\n",
			[]string{
				"8: invalidation-queue-size 100: not carried over",
				"9: pack-gc true: not carried over",
				"14: blob-dir /srv/plone/var/blobstorage: not carried over",
				"19: handler <logfile> /srv/plone/var/log/zeo.log: not carried over",
				"25: <runner>: zdaemon's section not carried over",
			}},
		{"zrs-zeo.conf",
			"storage /var/lib/zeo/Data.fs name=main\nzeo zrs2.example.com:8100 read_only=true protocol=msgpack timeout=300s\nlog warn\n" +
				"replication to=0.0.0.0:5000 from=zrs1.example.com:5000 keep_alive=30s protocol=zrs2.0\n",
			[]string{"18: pack-keep-old false: not carried over"}},
	} {
		t.Run(c.file, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", "zconfig", c.file))
			if err != nil {
				t.Fatal(err)
			}
			res, err := ImportZConfig(c.file, src, ZConfigOptions{})
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if got := zcSummary(res.Config); got != c.want {
				t.Errorf("converted to\n%s\nwant\n%s\nHCL:\n%s", got, c.want, res.HCL)
			}
			checkNotes(t, res.Notes, c.notes)
			// The output is a file LoadConfig accepts as it is.
			path := filepath.Join(t.TempDir(), "node.hcl")
			if err := os.WriteFile(path, res.HCL, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadConfig(path); err != nil {
				t.Errorf("LoadConfig: %v\n%s", err, res.HCL)
			}
		})
	}
}

func TestHCLQuote(t *testing.T) {
	for _, s := range []string{"", "plain", `a"b`, `a\b`, "${x}", "%{if}", "$${x}", "100%", "$", "tab\there", "line\nbreak"} {
		src := fmt.Sprintf("storage { path = %s }\nzeo { listen = \"127.0.0.1:1\" }\n", QuoteHCL(s))
		if s == "" {
			src = strings.Replace(src, QuoteHCL(s), `"x"`, 1)
			s = "x"
		}
		c, diags := ParseConfig("q.hcl", []byte(src))
		if diags.HasErrors() {
			t.Errorf("%q: %v", s, diags)
			continue
		}
		if c.Storage.Path != s {
			t.Errorf("%q came back as %q", s, c.Storage.Path)
		}
	}
}
