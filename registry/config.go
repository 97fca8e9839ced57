package registry

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// DefaultSessionTimeout is the ZooKeeper session timeout asked for when
// Config.SessionTimeout is zero: how long a node may be unreachable before
// the others see it gone (cluster.md, "Timings").
const DefaultSessionTimeout = 4 * time.Second

// Config says where the cluster's state lives in ZooKeeper.
type Config struct {
	// Servers are the ZooKeeper servers, "host:port" (port 2181 when
	// omitted).
	Servers []string
	// Cluster names the cluster; it only serves to derive Root.
	Cluster string
	// Root is the path under which everything lives; default
	// "/zrs/<Cluster>".
	Root string
	// SessionTimeout is the session timeout asked for (default 4 s). The
	// servers clamp it to between 2 and 20 of their ticks.
	SessionTimeout time.Duration
	// Dialer, when set, replaces net.DialTimeout for connections to the
	// servers (tests use it to cut a client off).
	Dialer func(network, address string, timeout time.Duration) (net.Conn, error)
}

// Default returns the configuration of cluster on servers, with defaults.
func Default(cluster string, servers ...string) Config {
	return Config{Cluster: cluster, Servers: servers}.WithDefaults()
}

// WithDefaults returns c with the defaults filled in.
func (c Config) WithDefaults() Config {
	if c.Root == "" && c.Cluster != "" {
		c.Root = "/zrs/" + c.Cluster
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	return c
}

// Validate reports the first problem of c (after WithDefaults).
func (c Config) Validate() error {
	if len(c.Servers) == 0 {
		return errors.New("registry: no ZooKeeper servers configured")
	}
	for _, s := range c.Servers {
		if err := checkServer(s); err != nil {
			return err
		}
	}
	if c.Root == "" {
		return errors.New("registry: neither a root path nor a cluster name configured")
	}
	if err := checkPath(c.Root); err != nil {
		return fmt.Errorf("registry: root %q: %v", c.Root, err)
	}
	if c.SessionTimeout < 500*time.Millisecond || c.SessionTimeout > 5*time.Minute {
		return fmt.Errorf("registry: session timeout %s is outside 500ms..5m", c.SessionTimeout)
	}
	return nil
}

func checkServer(s string) error {
	if s == "" || strings.ContainsAny(s, " \t,/") {
		return fmt.Errorf("registry: bad ZooKeeper server %q: want host:port", s)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return nil // the default port
		}
		return fmt.Errorf("registry: bad ZooKeeper server %q: %v", s, err)
	}
	if host == "" {
		return fmt.Errorf("registry: bad ZooKeeper server %q: no host", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("registry: bad ZooKeeper server %q: bad port", s)
	}
	return nil
}

// checkPath checks an absolute znode path other than "/".
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" || strings.HasSuffix(p, "/") {
		return errors.New("want an absolute path like /zrs/prod, without a trailing slash")
	}
	parts := strings.Split(p[1:], "/")
	if parts[0] == "zookeeper" {
		return errors.New("/zookeeper is ZooKeeper's own")
	}
	for _, part := range parts {
		if err := checkName(part); err != nil {
			return err
		}
	}
	return nil
}

// checkName checks one path component.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty path component")
	case name == "." || name == "..":
		return fmt.Errorf("path component %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("path component %q contains '/' or NUL", name)
	}
	return nil
}

// Paths are the znodes of a cluster (cluster.md, "ZooKeeper layout").
type Paths struct {
	Root              string
	Nodes             string // children: ephemeral node records
	Primary           string // ephemeral: the primary's record
	Epoch             string // persistent: decimal epoch
	Sync              string // persistent: synchronous replication state
	Providers         string // children: the primary's ZEO address (zc.zkzeo)
	ReadOnly          string // parent of ReadOnlyProviders
	ReadOnlyProviders string // children: secondaries' ZEO addresses (zc.zkzeo)
	Maintenance       string // persistent, optional: automatic failover paused
	Switchover        string // persistent, optional: a planned change of primary
}

// PathsUnder returns the paths of the cluster rooted at root.
func PathsUnder(root string) Paths {
	return Paths{
		Root:              root,
		Nodes:             root + "/nodes",
		Primary:           root + "/primary",
		Epoch:             root + "/epoch",
		Sync:              root + "/sync",
		Providers:         root + "/providers",
		ReadOnly:          root + "/readonly",
		ReadOnlyProviders: root + "/readonly/providers",
		Maintenance:       root + "/maintenance",
		Switchover:        root + "/switchover",
	}
}

// Paths returns the cluster's paths (after WithDefaults).
func (c Config) Paths() Paths { return PathsUnder(c.Root) }

// Node returns the path of node name's record.
func (p Paths) Node(name string) string { return p.Nodes + "/" + name }

// Provider returns the zc.zkzeo entry of ZEO address addr: under
// Providers for the primary, ReadOnlyProviders for secondaries.
func (p Paths) Provider(addr string, readOnly bool) string {
	if readOnly {
		return p.ReadOnlyProviders + "/" + addr
	}
	return p.Providers + "/" + addr
}
