package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/internal/testlog"
	"github.com/zrs-go/zrs/storage"
)

// buildZrs compiles the command once per test binary run.
func buildZrs(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "zrs")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestNodeServesAndShutsDownGracefully runs `zrs node` as a real process,
// commits through the Go client while a transaction of another client is
// left in progress, stops the node with SIGTERM and checks the exit status,
// the data and the .index it leaves behind.
func TestNodeServesAndShutsDownGracefully(t *testing.T) {
	bin := buildZrs(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "Data.fs")
	cfgPath := filepath.Join(dir, "node.hcl")
	cfg := fmt.Sprintf("name = \"n1\"\nstorage { path = %q }\nzeo { listen = \"127.0.0.1:0\" }\nlog { level = \"debug\" }\n", data)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "node", "--config", cfgPath)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no startup line: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`connect to (\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("startup line does not say where to connect: %q", line)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, m[1], client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	txn := c.Begin(client.TxnMeta{User: "u", Description: "first"})
	txn.Store(0, 0, []byte("root"))
	tid, err := txn.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("node exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("node did not stop on SIGTERM\n%s", stderr.String())
	}
	if _, err := os.Stat(data + ".index"); err != nil {
		t.Fatalf("no .index after shutdown: %v", err)
	}
	s, err := storage.Open(data, storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, serial, err := s.Load(0); err != nil || string(got) != "root" || serial != tid {
		t.Fatalf("after restart: %q %s %v", got, serial, err)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.hcl")
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(good, []byte("storage { path = \"x\" }\nzeo { listen = \":8100\" }\n"), 0o644)
	os.WriteFile(bad, []byte("storage { path = \"x\" }\nzeo {\n  listen = \":8100\"\n  protocol = \"xml\"\n}\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"zrs", "config", "check", good}, &out, &errOut); code != exitOK {
		t.Fatalf("good config: exit %d: %s", code, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	code := run([]string{"zrs", "config", "check", bad}, &out, &errOut)
	if code == exitOK || !strings.Contains(errOut.String(), "bad.hcl:4,") {
		t.Fatalf("bad config: exit %d, stderr %q: want a diagnostic at line 4", code, errOut.String())
	}
}

// TestNodeLogFormat runs `zrs node` in-process with log { json = ... } and
// checks what it writes to stderr: with json = true every line is one JSON
// object carrying hclog's @level and @message and the node's name (log
// shippers depend on all three), and without it the lines are hclog's text.
func TestNodeLogFormat(t *testing.T) {
	tests := []struct {
		name string
		json bool
	}{
		{"json", true},
		{"text", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "node.hcl")
			cfg := fmt.Sprintf("name = \"n1\"\nstorage { path = %q }\nzeo { listen = \"127.0.0.1:0\" }\nlog {\n  level = \"info\"\n  json = %t\n}\n",
				filepath.Join(dir, "Data.fs"), tc.json)
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr testlog.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- newApp(&stdout, &stderr).RunContext(ctx, []string{"zrs", "node", "--config", cfgPath})
			}()
			// The startup line comes after the node is listening; cancelling
			// then stops it as SIGTERM would, logging the shutdown too.
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(stdout.String(), "connect to") {
				select {
				case err := <-done:
					t.Fatalf("node exited early: %v\n%s", err, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("no startup line\n%s", stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("node: %v\n%s", err, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("node did not stop\n%s", stderr.String())
			}

			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			var messages []string
			for _, line := range lines {
				var rec map[string]any
				err := json.Unmarshal([]byte(line), &rec)
				if !tc.json {
					if err == nil {
						t.Errorf("json = false, yet a JSON line: %s", line)
					}
					if !strings.Contains(line, "[INFO]") || !strings.Contains(line, "node=n1") {
						t.Errorf("text line without its level or node: %s", line)
					}
					continue
				}
				if err != nil {
					t.Errorf("not JSON: %v: %s", err, line)
					continue
				}
				for _, key := range []string{"@level", "@message", "@timestamp"} {
					if _, ok := rec[key].(string); !ok {
						t.Errorf("no %s: %s", key, line)
					}
				}
				if rec["@level"] != "info" {
					t.Errorf("@level %v at log level info: %s", rec["@level"], line)
				}
				if rec["node"] != "n1" {
					t.Errorf("node %v, want n1: %s", rec["node"], line)
				}
				if tid, ok := rec["last_tid"]; ok {
					if s, isStr := tid.(string); !isStr || len(s) != 16 {
						t.Errorf("last_tid %v is not 16 hex digits: %s", tid, line)
					}
				}
				if msg, ok := rec["@message"].(string); ok {
					messages = append(messages, msg)
				}
			}
			if tc.json {
				// Startup and shutdown are both logged: the test saw the
				// node's whole life, not just its first line.
				for _, want := range []string{"serving ZEO", "stopped"} {
					if !slices.Contains(messages, want) {
						t.Errorf("no %q among the messages %q", want, messages)
					}
				}
			}
		})
	}
}
