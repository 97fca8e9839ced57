package registry_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zrs-go/zrs/registry"
	"github.com/zrs-go/zrs/storage"
)

func TestConfig(t *testing.T) {
	c := registry.Default("prod", "127.0.0.1:2181")
	if c.Root != "/zrs/prod" || c.SessionTimeout != 4*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p := c.Paths()
	if p.Node("n1") != "/zrs/prod/nodes/n1" || p.Primary != "/zrs/prod/primary" || p.Epoch != "/zrs/prod/epoch" ||
		p.Sync != "/zrs/prod/sync" || p.Provider("h:1", false) != "/zrs/prod/providers/h:1" ||
		p.Provider("h:1", true) != "/zrs/prod/readonly/providers/h:1" {
		t.Fatalf("paths: %+v", p)
	}
	if c := (registry.Config{Servers: []string{"zk1"}, Root: "/x"}).WithDefaults(); c.Validate() != nil || c.Root != "/x" {
		t.Fatalf("explicit root: %+v %v", c, c.Validate())
	}
	for _, bad := range []registry.Config{
		{Cluster: "c"},
		{Servers: []string{"h:0"}, Cluster: "c"},
		{Servers: []string{"h:1,h:2"}, Cluster: "c"},
		{Servers: []string{":2181"}, Cluster: "c"},
		{Servers: []string{"h"}},
		{Servers: []string{"h"}, Root: "zrs"},
		{Servers: []string{"h"}, Root: "/zrs/"},
		{Servers: []string{"h"}, Root: "/zrs//x"},
		{Servers: []string{"h"}, Root: "/zrs/../x"},
		{Servers: []string{"h"}, Root: "/zookeeper/x"},
		{Servers: []string{"h"}, Cluster: "a/b/"},
		{Servers: []string{"h"}, Cluster: "c", SessionTimeout: time.Millisecond},
	} {
		if err := bad.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestNodeRecordJSON(t *testing.T) {
	rec := registry.NodeRecord{
		Name: "n1", ZEO: "10.0.0.1:8100", Replication: "10.0.0.1:5000", Role: registry.RoleSecondary,
		Epoch: 7, LastTid: storage.Tid(0x03c5f1a2b3c4d5e6), Upstream: "n0", Priority: 2, NoFailover: true,
		Version: "1.2.3", PID: 42,
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"name": "n1", "zeo": "10.0.0.1:8100", "replication": "10.0.0.1:5000", "role": "secondary",
		"epoch": 7.0, "last_tid": "03c5f1a2b3c4d5e6", "upstream": "n0", "priority": 2.0,
		"no_failover": true, "version": "1.2.3", "pid": 42.0,
	}
	if len(m) != len(want) {
		t.Errorf("fields %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v (in %s)", k, m[k], v, b)
		}
	}
	var back registry.NodeRecord
	if err := json.Unmarshal(b, &back); err != nil || back != rec {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	zero, _ := json.Marshal(registry.NodeRecord{Name: "x"})
	if !strings.Contains(string(zero), `"last_tid":"0000000000000000"`) {
		t.Errorf("zero tid: %s", zero)
	}
	if err := json.Unmarshal([]byte(`{"name":"x","last_tid":"zz"}`), &back); err == nil {
		t.Error("bad last_tid accepted")
	}
}
