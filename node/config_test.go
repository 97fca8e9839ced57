package node

import (
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	src := `
name = "n1"
storage { path = "/var/lib/zrs/Data.fs" }
zeo { listen = "127.0.0.1:8100" }
`
	c, diags := ParseConfig("node.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if c.Name != "n1" || c.Storage.Name != "1" || c.ZEO.Protocol != ProtocolPickle || c.Log.Level != "info" || c.ZEO.ReadOnly {
		t.Fatalf("defaults not applied: %+v %+v %+v %+v", c, c.Storage, c.ZEO, c.Log)
	}
}

func TestConfigDiagnosticsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"bad protocol", "storage { path = \"x\" }\nzeo {\n  listen = \"127.0.0.1:1\"\n  protocol = \"json\"\n}\n", "node.hcl:4,"},
		{"bad listen", "storage { path = \"x\" }\nzeo {\n  listen = \"nonsense\"\n}\n", "node.hcl:3,"},
		{"missing zeo", "storage { path = \"x\" }\n", "Missing zeo block"},
		{"bad transaction timeout", "storage { path = \"x\" }\nzeo {\n  listen = \":1\"\n  transaction_timeout = \"-5s\"\n}\n", "node.hcl:4,"},
		{"bad level", "storage { path = \"x\" }\nzeo { listen = \":1\" }\nlog { level = \"loud\" }\n", "node.hcl:3,"},
		{"syntax", "storage { path = }\n", "node.hcl:1,"},
		{"unknown attribute", "storage { path = \"x\" }\nzeo { listen = \":1\" }\nbogus = 1\n", "node.hcl:3,"},
		{"replication needs an address", "storage { path = \"x\" }\nzeo { listen = \":1\" }\nreplication { keep_alive_delay = \"1s\" }\n", "replicate_to"},
		{"replication same address", "storage { path = \"x\" }\nzeo { listen = \":1\" }\nreplication {\n replicate_to = \":5000\"\n replicate_from = \":5000\"\n}\n", "node.hcl:5,"},
		{"bad duration", "storage { path = \"x\" }\nzeo { listen = \":1\" }\nreplication {\n replicate_to = \":5000\"\n keep_alive_delay = \"soon\"\n}\n", "node.hcl:5,"},
	}
	for _, tt := range tests {
		_, diags := ParseConfig("node.hcl", []byte(tt.src))
		if !diags.HasErrors() {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if got := diags.Error(); !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q does not contain %q", tt.name, got, tt.want)
		}
	}
}
