package node

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/zrs-go/zrs/election"
	"github.com/zrs-go/zrs/registry"
)

// ZooKeeperConfig switches a node to ZooKeeper mode:
//
//	cluster = "main"
//	zookeeper {
//	  servers         = ["127.0.0.1:2181", "127.0.0.1:2182", "127.0.0.1:2183"]
//	  root            = "/zrs/main"   # default "/zrs/<cluster>"
//	  session_timeout = "4s"
//	}
//
// In ZooKeeper mode the node needs replication.replicate_to (any node may
// become the primary others replicate from) and must not set
// replicate_from: its upstream comes from ZooKeeper.
type ZooKeeperConfig struct {
	Servers        []string  `hcl:"servers"`
	Root           string    `hcl:"root,optional"`
	SessionTimeout string    `hcl:"session_timeout,optional"`
	DefRange       hcl.Range `hcl:",def_range"`
}

// FailoverConfig tunes the election (cluster.md, "Election").
type FailoverConfig struct {
	// Priority breaks ties between equally fresh nodes; higher wins.
	Priority int `hcl:"priority,optional"`
	// NoFailover keeps the node from ever becoming primary.
	NoFailover bool `hcl:"no_failover,optional"`
	// SettleDelay lets peers publish their final last tid before a node
	// runs for primary, e.g. "500ms".
	SettleDelay string `hcl:"settle_delay,optional"`
	// MaxLagOnFailover bounds how far behind the old primary's last tid
	// (in time) a new primary may be in asynchronous mode; a number of
	// seconds or a duration. 0 elects only the freshest node.
	MaxLagOnFailover string    `hcl:"max_lag_on_failover,optional"`
	DefRange         hcl.Range `hcl:",def_range"`
}

// AdvertiseConfig gives the addresses other nodes and clients use to reach
// this node, when they differ from the listen addresses (a wildcard
// listen address, NAT, containers). By default a wildcard host is
// replaced by the machine's host name.
type AdvertiseConfig struct {
	ZEO         string    `hcl:"zeo,optional"`
	Replication string    `hcl:"replication,optional"`
	DefRange    hcl.Range `hcl:",def_range"`
}

// Defaults of ZooKeeper mode (cluster.md, "Timings").
const (
	DefaultCluster        = "main"
	DefaultSessionTimeout = 4 * time.Second
)

// Clustered reports whether the node runs in ZooKeeper mode.
func (c *Config) Clustered() bool { return c.ZooKeeper != nil }

func (c *Config) applyClusterDefaults() {
	if c.ZooKeeper == nil {
		return
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if c.ZooKeeper.Root == "" {
		c.ZooKeeper.Root = "/zrs/" + c.Cluster
	}
	if c.ZooKeeper.SessionTimeout == "" {
		c.ZooKeeper.SessionTimeout = DefaultSessionTimeout.String()
	}
	if c.Failover == nil {
		c.Failover = &FailoverConfig{}
	}
	if c.Failover.SettleDelay == "" {
		c.Failover.SettleDelay = election.DefaultSettleDelay.String()
	}
	if c.Failover.MaxLagOnFailover == "" {
		c.Failover.MaxLagOnFailover = "0"
	}
	if c.Advertise == nil {
		c.Advertise = &AdvertiseConfig{}
	}
	if c.Advertise.ZEO == "" && c.ZEO != nil {
		c.Advertise.ZEO = advertisable(c.ZEO.Listen)
	}
	if c.Advertise.Replication == "" && c.Replication != nil {
		c.Advertise.Replication = advertisable(c.Replication.ReplicateTo)
	}
}

// advertisable turns a listen address into one peers can dial: a wildcard
// or empty host becomes this machine's host name.
func advertisable(listen string) string {
	if listen == "" || strings.Contains(listen, "/") {
		return listen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		h, err := os.Hostname()
		if err != nil {
			return listen
		}
		return net.JoinHostPort(h, port)
	}
	return listen
}

// parseLag reads max_lag_on_failover: a duration, or a plain number of
// seconds.
func parseLag(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	var secs float64
	if _, err := fmt.Sscanf(s, "%g", &secs); err != nil {
		return 0, fmt.Errorf("%q is not a duration such as \"2s\" or a number of seconds", s)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

type reportFunc func(block string, rng hcl.Range, attr, format string, args ...any)

func (c *Config) validateCluster(bad reportFunc) {
	z := c.ZooKeeper
	if z == nil {
		for _, b := range []struct {
			name string
			set  bool
			rng  hcl.Range
		}{{"failover", c.Failover != nil, rangeOf(c.Failover)}, {"advertise", c.Advertise != nil, rangeOfAdv(c.Advertise)}} {
			if b.set {
				bad(b.name, b.rng, "", "the %s block only applies in ZooKeeper mode (add a zookeeper block)", b.name)
			}
		}
		if r := c.Replication; r != nil && (r.Synchronous > 0 || r.Upstream != "") {
			bad("replication", r.DefRange, "synchronous", "synchronous replication and upstream need ZooKeeper mode (add a zookeeper block)")
		}
		return
	}
	rc := registry.Config{Servers: z.Servers, Cluster: c.Cluster, Root: z.Root}
	if len(z.Servers) == 0 {
		bad("zookeeper", z.DefRange, "servers", "list at least one ZooKeeper server as \"host:port\"")
	} else if err := rc.WithDefaults().Validate(); err != nil {
		bad("zookeeper", z.DefRange, "servers", "%v", err)
	}
	if d, err := time.ParseDuration(z.SessionTimeout); err != nil || d < time.Second {
		bad("zookeeper", z.DefRange, "session_timeout", "%q is not a duration of at least 1s such as \"4s\"", z.SessionTimeout)
	}
	if c.Name == "" || strings.ContainsAny(c.Name, "/ ") {
		bad("", hcl.Range{}, "name", "ZooKeeper mode needs a node name without slashes or spaces, unique in the cluster")
	}
	r := c.Replication
	switch {
	case r == nil:
		bad("zookeeper", z.DefRange, "", "ZooKeeper mode needs replication { replicate_to = \"host:port\" }: any node may become the primary")
	case r.ReplicateFrom != "":
		bad("replication", r.DefRange, "replicate_from", "not used in ZooKeeper mode: the upstream comes from ZooKeeper (use upstream = \"node name\" for cascading)")
	case r.ReplicateTo == "":
		bad("replication", r.DefRange, "replicate_to", "ZooKeeper mode needs replicate_to: any node may become the primary")
	case r.Protocol != "zrs":
		bad("replication", r.DefRange, "protocol", "ZooKeeper mode replicates with the \"zrs\" protocol only")
	}
	f := c.Failover
	if d, err := time.ParseDuration(f.SettleDelay); err != nil || d < 0 {
		bad("failover", f.DefRange, "settle_delay", "%q is not a duration such as \"500ms\"", f.SettleDelay)
	}
	if d, err := parseLag(f.MaxLagOnFailover); err != nil || d < 0 {
		bad("failover", f.DefRange, "max_lag_on_failover", "%q is not a non-negative duration or number of seconds", f.MaxLagOnFailover)
	}
	a := c.Advertise
	for attr, addr := range map[string]string{"zeo": a.ZEO, "replication": a.Replication} {
		if addr == "" || strings.Contains(addr, "/") {
			continue
		}
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err != nil || host == "" || (ip != nil && ip.IsUnspecified()) {
			bad("advertise", a.DefRange, attr, "%q is not an address peers can dial (host:port with a real host)", addr)
		}
	}
}

func rangeOf(f *FailoverConfig) hcl.Range {
	if f == nil {
		return hcl.Range{}
	}
	return f.DefRange
}

func rangeOfAdv(a *AdvertiseConfig) hcl.Range {
	if a == nil {
		return hcl.Range{}
	}
	return a.DefRange
}

// RegistryConfig returns the ZooKeeper settings for registry.Connect.
func (c *Config) RegistryConfig() registry.Config {
	z := c.ZooKeeper
	d, _ := time.ParseDuration(z.SessionTimeout)
	return registry.Config{Servers: z.Servers, Cluster: c.Cluster, Root: z.Root, SessionTimeout: d}.WithDefaults()
}

// ElectionConfig returns the node's election settings.
func (c *Config) ElectionConfig() election.Config {
	f := c.Failover
	settle, _ := time.ParseDuration(f.SettleDelay)
	lag, _ := parseLag(f.MaxLagOnFailover)
	return election.Config{SettleDelay: settle, MaxLagOnFailover: lag, Priority: f.Priority, NoFailover: f.NoFailover}
}
