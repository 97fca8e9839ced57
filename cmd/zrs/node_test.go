package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-go/zrs/client"
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
