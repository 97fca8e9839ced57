package registry_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/integration"
	"github.com/zrs-go/zrs/internal/testlog"
	"github.com/zrs-go/zrs/registry"
)

// TestEphemeralInTheWay covers the EphemeralOwner checks that real
// failures produce only with unlucky timing: a znode left by an earlier
// session of ours is replaced, and one this very session created (a
// create whose answer was lost) is adopted.
func TestEphemeralInTheWay(t *testing.T) {
	zkc := integration.ZKStandalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logs := &testlog.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("=== log:\n%s", logs.String())
		}
	})
	s, err := registry.Connect(ctx, registry.Config{Servers: zkc.Servers(), Cluster: "t", SessionTimeout: 2 * time.Second},
		hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// Another session creates nodes/n1; we pretend it was ours.
	old, _, err := zk.Connect(zkc.Servers(), 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	path := s.Paths().Node("n1")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = old.Create(path, []byte(`{"name":"n1","pid":1}`), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.MarkPast(old.SessionID())

	if err := s.Register(ctx, registry.NodeRecord{Name: "n1", Role: registry.RoleCandidate}); err != nil {
		t.Fatal(err)
	}
	data, stat, err := s.Conn().Get(path)
	if err != nil {
		t.Fatal(err)
	}
	if stat.EphemeralOwner != s.Status().SessionID {
		t.Fatalf("owner %x, want ours %x", stat.EphemeralOwner, s.Status().SessionID)
	}
	var rec registry.NodeRecord
	if err := json.Unmarshal(data, &rec); err != nil || rec.PID != os.Getpid() || rec.Role != registry.RoleCandidate {
		t.Fatalf("record %s (%v)", data, err)
	}
	if !strings.Contains(logs.String(), "an earlier session of ours left") {
		t.Fatal("no log line about the stale record")
	}

	// This session already holds the provider entry, with other data.
	ppath := s.Paths().Provider("127.0.0.1:9", false)
	if _, err := s.Conn().Create(ppath, []byte("junk"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if err := s.Advertise("127.0.0.1:9", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	data, stat, err = s.Conn().Get(ppath)
	if err != nil || stat.EphemeralOwner != s.Status().SessionID || !strings.Contains(string(data), `"pid"`) {
		t.Fatalf("provider entry %s, owner %x, %v", data, stat.EphemeralOwner, err)
	}
}
