package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/zrs-go/zrs/integration"
	"github.com/zrs-go/zrs/registry"
	"github.com/zrs-go/zrs/storage"
)

// TestStatusShowsTheCluster registers two nodes in a real ZooKeeper,
// elects one and writes the sync set, then reads it all back with
// `zrs status`.
func TestStatusShowsTheCluster(t *testing.T) {
	zk := integration.ZKStandalone(t)
	servers := strings.Join(zk.Servers(), ",")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := registry.Config{Servers: zk.Servers(), Root: "/zrs/statustest"}.WithDefaults()
	base := storage.TidFromTime(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	sessions := map[string]*registry.Session{}
	for _, n := range []registry.NodeRecord{
		{Name: "n1", ZEO: "127.0.0.1:8101", Replication: "127.0.0.1:5001", Role: "primary", Epoch: 1, LastTid: base},
		{Name: "n2", ZEO: "127.0.0.1:8102", Replication: "127.0.0.1:5002", Role: "secondary", Epoch: 1,
			LastTid: storage.TidFromTime(base.Time().Add(-1500 * time.Millisecond)), Upstream: "n1"},
	} {
		s, err := registry.Connect(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Register(ctx, n); err != nil {
			t.Fatal(err)
		}
		sessions[n.Name] = s
	}
	ep, err := sessions["n1"].ReadEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	term, err := sessions["n1"].RunForPrimary(ctx, ep.Version, ep.Value+1,
		registry.PrimaryRecord{Name: "n1", ZEO: "127.0.0.1:8101", Replication: "127.0.0.1:5001", Epoch: ep.Value + 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := sessions["n1"].WriteSync(ctx, term, registry.SyncRecord{Primary: "n1", Members: []string{"n2"}}); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	if code := run([]string{"zrs", "status", "--zookeeper", servers, "--root", "/zrs/statustest"}, &out, &errOut); code != exitOK {
		t.Fatalf("zrs status: exit %d: %s", code, errOut.String())
	}
	got := out.String()
	t.Log(got)
	for _, want := range []string{
		"primary n1 (epoch 1)",
		"n1    primary*",
		"n2    secondary",
		base.String(),
		"1.5s",
		"n1        yes",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status output lacks %q:\n%s", want, got)
		}
	}

	// Without ZooKeeper the command fails, naming the servers.
	zk.Stop(0)
	out.Reset()
	errOut.Reset()
	code := run([]string{"zrs", "status", "--zookeeper", servers, "--root", "/zrs/statustest", "--timeout", "1s"}, &out, &errOut)
	if code == exitOK || !strings.Contains(errOut.String(), servers) {
		t.Fatalf("status without ZooKeeper: exit %d, stderr %q", code, errOut.String())
	}
}
