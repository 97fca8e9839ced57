package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// examplesDir holds the example configurations and systemd unit.
const examplesDir = "../../examples"

// TestExamplesPassConfigCheck runs `zrs config check` on every
// examples/*.hcl: an example operators copy must never be rejected.
func TestExamplesPassConfigCheck(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"standalone.hcl", "primary.hcl", "secondary.hcl", "cascade.hcl", "cluster-zrs1.hcl"}
	for _, w := range want {
		if _, err := os.Stat(filepath.Join(examplesDir, w)); err != nil {
			t.Errorf("example missing: %v", err)
		}
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			status, stdout, stderr := runZrs(t, "config", "check", f)
			if status != exitOK || stdout != f+": ok\n" {
				t.Errorf("zrs config check %s: status %d, stdout %q, stderr:\n%s", f, status, stdout, stderr)
			}
		})
	}
}

// TestExampleSystemdUnit checks the unit's essentials: how it starts the
// node, that it restarts on failure, runs as its own user, and stops the
// node with SIGTERM, leaving it time to finish.
func TestExampleSystemdUnit(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(examplesDir, "zrs.service"))
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("not a setting: %q", line)
				continue
			}
			settings[section+"."+k] = v
		}
	}
	for k, v := range map[string]string{
		"Service.Type":       "simple",
		"Service.ExecStart":  "/usr/local/bin/zrs node --config /etc/zrs/node.hcl",
		"Service.Restart":    "on-failure",
		"Service.User":       "zrs",
		"Service.KillSignal": "SIGTERM",
		"Install.WantedBy":   "multi-user.target",
	} {
		if settings[k] != v {
			t.Errorf("%s = %q, want %q", k, settings[k], v)
		}
	}
	for _, k := range []string{"Service.LimitNOFILE", "Service.TimeoutStopSec"} {
		if settings[k] == "" {
			t.Errorf("%s is not set", k)
		}
	}
}
