package node

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Config is a node's configuration, read from an HCL file:
//
//	name = "n1"
//	storage { path = "/var/lib/zrs/Data.fs"  name = "1" }
//	zeo { listen = "127.0.0.1:8100"  read_only = false  protocol = "pickle" }
//	log { level = "info"  json = false }
//	replication { replicate_to = "0.0.0.0:5000" }   # or replicate_from = "host:port"
//	http { listen = "127.0.0.1:8200" }                # health checks, status, metrics
//
// A zookeeper block switches the node to ZooKeeper mode (see
// ClusterConfig): it starts as a candidate, and election decides its role.
type Config struct {
	Name        string             `hcl:"name,optional"`
	Cluster     string             `hcl:"cluster,optional"`
	Storage     *StorageConfig     `hcl:"storage,block"`
	ZEO         *ZEOConfig         `hcl:"zeo,block"`
	Log         *LogConfig         `hcl:"log,block"`
	Replication *ReplicationConfig `hcl:"replication,block"`
	ZooKeeper   *ZooKeeperConfig   `hcl:"zookeeper,block"`
	Failover    *FailoverConfig    `hcl:"failover,block"`
	Advertise   *AdvertiseConfig   `hcl:"advertise,block"`
	HTTP        *HTTPConfig        `hcl:"http,block"`

	// file is the parsed source, kept to point diagnostics at lines.
	file *hcl.File
}

// StorageConfig locates the FileStorage file.
type StorageConfig struct {
	Path string `hcl:"path"`
	// Name is the storage name clients register with; ZEO's default is "1".
	Name     string    `hcl:"name,optional"`
	DefRange hcl.Range `hcl:",def_range"`
}

// ZEOConfig configures the ZEO 5 service.
type ZEOConfig struct {
	Listen   string `hcl:"listen"`
	ReadOnly bool   `hcl:"read_only,optional"`
	// Protocol is "pickle" (Z5, what stock clients speak) or "msgpack" (M5).
	Protocol string `hcl:"protocol,optional"`
	// TransactionTimeout bounds how long a client may hold the commit
	// lock after voting, e.g. "30s"; empty means no limit (ZEO's default).
	TransactionTimeout string    `hcl:"transaction_timeout,optional"`
	DefRange           hcl.Range `hcl:",def_range"`
}

// TxnTimeout returns the parsed transaction timeout, 0 for none.
func (z *ZEOConfig) TxnTimeout() time.Duration {
	d, _ := time.ParseDuration(z.TransactionTimeout)
	return d
}

// LogConfig configures logging.
type LogConfig struct {
	Level    string    `hcl:"level,optional"`
	JSON     bool      `hcl:"json,optional"`
	DefRange hcl.Range `hcl:",def_range"`
}

// HTTPConfig configures the node's HTTP endpoint (health checks, status
// and Prometheus metrics; see http.go). Without the block there is none.
type HTTPConfig struct {
	// Listen is host:port or a Unix socket path.
	Listen   string    `hcl:"listen"`
	DefRange hcl.Range `hcl:",def_range"`
}

// ReplicationConfig mirrors the <zrs> section of zc.zrs.
type ReplicationConfig struct {
	// ReplicateTo is where this node serves its replication stream.
	ReplicateTo string `hcl:"replicate_to,optional"`
	// ReplicateFrom makes this node a read-only secondary of that address.
	ReplicateFrom string `hcl:"replicate_from,optional"`
	// KeepAliveDelay is how often an idle stream carries a keep-alive.
	KeepAliveDelay string `hcl:"keep_alive_delay,optional"`
	// Protocol is the stream protocol used when replicating from upstream:
	// "zrs" (ours) or "zrs2.0" (a stock zc.zrs primary).
	Protocol string `hcl:"protocol,optional"`
	// Upstream names the node a cascading secondary replicates from in
	// ZooKeeper mode while that node is alive (else it follows the primary).
	Upstream string `hcl:"upstream,optional"`
	// Synchronous is how many secondaries must durably hold a commit
	// before it is acknowledged (ZooKeeper mode); 0 is asynchronous.
	Synchronous int `hcl:"synchronous,optional"`
	// SynchronousStrict makes commits wait (up to CommitTimeout) rather
	// than degrade to asynchronous when too few secondaries acknowledge.
	SynchronousStrict bool `hcl:"synchronous_strict,optional"`
	// CommitTimeout bounds a strict synchronous commit's wait, e.g. "10s".
	CommitTimeout string    `hcl:"commit_timeout,optional"`
	DefRange      hcl.Range `hcl:",def_range"`
}

// Protocol names accepted in zeo.protocol.
const (
	ProtocolPickle  = "pickle"
	ProtocolMsgpack = "msgpack"
)

// Default returns the configuration `zrs node` runs without a file: a
// writable storage under dir served on 127.0.0.1:8100.
func Default(dir string) *Config {
	c := &Config{
		Name:    "zrs",
		Storage: &StorageConfig{Path: filepath.Join(dir, "Data.fs")},
		ZEO:     &ZEOConfig{Listen: "127.0.0.1:8100"},
	}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	if c.Name == "" {
		if h, err := os.Hostname(); err == nil {
			c.Name = h
		} else {
			c.Name = "zrs"
		}
	}
	if c.Storage != nil && c.Storage.Name == "" {
		c.Storage.Name = "1"
	}
	if c.ZEO != nil && c.ZEO.Protocol == "" {
		c.ZEO.Protocol = ProtocolPickle
	}
	if c.Log == nil {
		c.Log = &LogConfig{}
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if r := c.Replication; r != nil {
		if r.KeepAliveDelay == "" {
			r.KeepAliveDelay = "60s"
		}
		if r.Protocol == "" {
			r.Protocol = "zrs"
		}
		if r.CommitTimeout == "" {
			r.CommitTimeout = "10s"
		}
	}
	c.applyClusterDefaults()
}

// ParseConfig reads the configuration in src (named filename in
// diagnostics), applies defaults and validates it.
func ParseConfig(filename string, src []byte) (*Config, hcl.Diagnostics) {
	file, diags := hclparse.NewParser().ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	c := &Config{file: file}
	if diags := gohcl.DecodeBody(file.Body, nil, c); diags.HasErrors() {
		return nil, diags
	}
	c.applyDefaults()
	if diags := c.Validate(); diags.HasErrors() {
		return nil, diags
	}
	return c, nil
}

// LoadConfig reads and validates the configuration file at path.
func LoadConfig(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, diags := ParseConfig(path, src)
	if diags.HasErrors() {
		return nil, diags
	}
	return c, nil
}

// Validate checks the configuration; each diagnostic names the file and
// line of the offending setting.
func (c *Config) Validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	bad := func(block string, rng hcl.Range, attr, format string, args ...any) {
		subject := c.attrRange(block, attr, rng)
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid %s", strings.Trim(block+"."+attr, ".")),
			Detail:   fmt.Sprintf(format, args...),
			Subject:  &subject,
		})
	}
	if c.Storage == nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing storage block",
			Detail: `A node needs a storage { path = "..." } block.`})
	} else if c.Storage.Path == "" {
		bad("storage", c.Storage.DefRange, "path", "the data file path must not be empty")
	}
	if c.ZEO == nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing zeo block",
			Detail: `A node needs a zeo { listen = "host:port" } block.`})
	} else {
		if err := checkListenAddress(c.ZEO.Listen); err != nil {
			bad("zeo", c.ZEO.DefRange, "listen", "%v", err)
		}
		if p := c.ZEO.Protocol; p != ProtocolPickle && p != ProtocolMsgpack {
			bad("zeo", c.ZEO.DefRange, "protocol", "%q is not %q or %q", p, ProtocolPickle, ProtocolMsgpack)
		}
		if tt := c.ZEO.TransactionTimeout; tt != "" {
			if d, err := time.ParseDuration(tt); err != nil || d <= 0 {
				bad("zeo", c.ZEO.DefRange, "transaction_timeout", "%q is not a positive duration such as \"30s\"", tt)
			}
		}
	}
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad("log", c.Log.DefRange, "level", "%q is not one of trace, debug, info, warn, error", c.Log.Level)
	}
	if r := c.Replication; r != nil {
		if r.ReplicateTo == "" && r.ReplicateFrom == "" && c.ZooKeeper == nil {
			bad("replication", r.DefRange, "replicate_to", "give replicate_to (primary), replicate_from (secondary), or both (cascading secondary)")
		}
		if r.ReplicateTo != "" && r.ReplicateTo == r.ReplicateFrom {
			bad("replication", r.DefRange, "replicate_from", "replicate_from and replicate_to must differ")
		}
		for attr, addr := range map[string]string{"replicate_to": r.ReplicateTo, "replicate_from": r.ReplicateFrom} {
			if addr != "" {
				if err := checkListenAddress(addr); err != nil {
					bad("replication", r.DefRange, attr, "%v", err)
				}
			}
		}
		if d, err := time.ParseDuration(r.KeepAliveDelay); err != nil || d <= 0 {
			bad("replication", r.DefRange, "keep_alive_delay", "%q is not a positive duration such as \"60s\"", r.KeepAliveDelay)
		}
		if r.Protocol != "zrs" && r.Protocol != "zrs2.0" {
			bad("replication", r.DefRange, "protocol", "%q is not \"zrs\" or \"zrs2.0\"", r.Protocol)
		}
		if d, err := time.ParseDuration(r.CommitTimeout); err != nil || d <= 0 {
			bad("replication", r.DefRange, "commit_timeout", "%q is not a positive duration such as \"10s\"", r.CommitTimeout)
		}
		if r.Synchronous < 0 {
			bad("replication", r.DefRange, "synchronous", "%d is negative; 0 means asynchronous", r.Synchronous)
		}
	}
	if h := c.HTTP; h != nil {
		if err := checkListenAddress(h.Listen); err != nil {
			bad("http", h.DefRange, "listen", "%v", err)
		}
	}
	c.validateCluster(bad)
	return diags
}

// KeepAlive returns the parsed keep-alive delay.
func (r *ReplicationConfig) KeepAlive() time.Duration {
	d, _ := time.ParseDuration(r.KeepAliveDelay)
	return d
}

// CommitTimeoutDuration returns the parsed commit timeout.
func (r *ReplicationConfig) CommitTimeoutDuration() time.Duration {
	d, _ := time.ParseDuration(r.CommitTimeout)
	return d
}

// checkListenAddress accepts host:port (host may be empty) or a Unix
// socket path (anything containing a slash).
func checkListenAddress(addr string) error {
	if addr == "" {
		return fmt.Errorf("an address is required")
	}
	if strings.Contains(addr, "/") {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port or a Unix socket path: %w", addr, err)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", addr)
	}
	return nil
}

// attrRange finds where attr is set inside the named top-level block, so a
// diagnostic points at the line; it falls back to the block's range.
func (c *Config) attrRange(block, attr string, fallback hcl.Range) hcl.Range {
	if c.file == nil {
		return fallback
	}
	body, ok := c.file.Body.(*hclsyntax.Body)
	if !ok {
		return fallback
	}
	for _, b := range body.Blocks {
		if b.Type != block {
			continue
		}
		if a, ok := b.Body.Attributes[attr]; ok {
			return a.SrcRange
		}
		return b.DefRange()
	}
	return fallback
}

// Network returns "unix" for socket paths and "tcp" otherwise.
func Network(addr string) string {
	if strings.Contains(addr, "/") {
		return "unix"
	}
	return "tcp"
}
