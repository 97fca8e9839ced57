package integration

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/zrs-go/zrs/registry"
)

// Cluster is a set of zrs nodes in ZooKeeper mode sharing one ZooKeeper
// ensemble and root.
type Cluster struct {
	t     testing.TB
	ZK    *ZKCluster
	Root  string
	Nodes []*Node
	sess  *registry.Session
}

// StartCluster starts n nodes named zrs1..zrsN against zk; tune, if not
// nil, adjusts each node's configuration first.
func StartCluster(t testing.TB, zk *ZKCluster, n int, tune func(i int, c *Config)) *Cluster {
	t.Helper()
	cl := &Cluster{t: t, ZK: zk, Root: "/zrs/main"}
	for i := range n {
		cfg := Config{Name: fmt.Sprintf("zrs%d", i+1), ZooKeeper: zk.Servers(), Root: cl.Root}
		if tune != nil {
			tune(i, &cfg)
		}
		cl.Root = cfg.Root
		cl.Nodes = append(cl.Nodes, NewNode(t, cfg))
	}
	for _, nd := range cl.Nodes {
		nd.Start()
	}
	return cl
}

// Session returns a ZooKeeper session of the test itself, for reading the
// cluster's znodes.
func (cl *Cluster) Session() *registry.Session {
	cl.t.Helper()
	if cl.sess != nil {
		return cl.sess
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := registry.Connect(ctx, registry.Config{Servers: cl.ZK.Servers(), Root: cl.Root, Cluster: "main"}, nil)
	if err != nil {
		cl.t.Fatalf("test's ZooKeeper session: %v", err)
	}
	cl.t.Cleanup(s.Close)
	cl.sess = s
	return s
}

// Node returns the node named name.
func (cl *Cluster) Node(name string) *Node {
	for _, n := range cl.Nodes {
		if n.Name() == name {
			return n
		}
	}
	cl.t.Fatalf("no node %q in the cluster", name)
	return nil
}

// Primary reads the primary znode: the node it names and the epoch, or
// nil when there is none.
func (cl *Cluster) Primary(ctx context.Context) (*Node, uint64, error) {
	v, err := cl.Session().ReadPrimary(ctx)
	if err != nil || !v.Present {
		return nil, 0, err
	}
	for _, n := range cl.Nodes {
		if n.Name() == v.Record.Name {
			return n, v.Record.Epoch, nil
		}
	}
	return nil, 0, fmt.Errorf("primary znode names unknown node %q", v.Record.Name)
}

// WaitPrimary waits until a primary other than any of not is elected and
// has published itself as primary in its node record; it returns it.
func (cl *Cluster) WaitPrimary(timeout time.Duration, not ...*Node) (*Node, uint64) {
	cl.t.Helper()
	var p *Node
	var epoch uint64
	WaitFor(cl.t, timeout, "a primary to be elected", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, e, err := cl.Primary(ctx)
		if err != nil || n == nil {
			return false
		}
		for _, o := range not {
			if n == o {
				return false
			}
		}
		recs, err := cl.Session().ReadNodes(ctx)
		if err != nil {
			return false
		}
		for _, r := range recs {
			if r.Name == n.Name() && r.Role == registry.RolePrimary && r.Epoch == e {
				p, epoch = n, e
				return true
			}
		}
		return false
	}, func() string { return cl.Status() })
	return p, epoch
}

// Records returns the node records, by name.
func (cl *Cluster) Records(ctx context.Context) (map[string]registry.NodeRecord, error) {
	recs, err := cl.Session().ReadNodes(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]registry.NodeRecord, len(recs))
	for _, r := range recs {
		m[r.Name] = r
	}
	return m, nil
}

// Status runs `zrs status` against the cluster and returns its output.
func (cl *Cluster) Status() string {
	out, err := exec.Command(Binary(cl.t), "status", "--zookeeper", strings.Join(cl.ZK.Servers(), ","),
		"--root", cl.Root, "--timeout", "5s").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("zrs status: %v\n%s", err, out)
	}
	return string(out)
}

// WaitSecondary waits until n publishes itself as a secondary of epoch.
func (cl *Cluster) WaitSecondary(ctx context.Context, n *Node, epoch uint64) {
	cl.t.Helper()
	WaitFor(cl.t, 30*time.Second, fmt.Sprintf("%s to be a secondary at epoch %d", n.Name(), epoch), func() bool {
		recs, err := cl.Records(ctx)
		r, ok := recs[n.Name()]
		return err == nil && ok && r.Role == registry.RoleSecondary && r.Epoch == epoch
	}, cl.Status)
}

// StopAndCompare stops every node gracefully, the primary p last, and
// checks that each data file is byte-identical to p's.
func (cl *Cluster) StopAndCompare(p *Node) {
	cl.t.Helper()
	for _, n := range cl.Nodes {
		if n != p {
			n.Stop()
		}
	}
	p.Stop()
	for _, n := range cl.Nodes {
		if n != p {
			SameFile(cl.t, p.DataPath(), n.DataPath())
		}
	}
}

// WaitSyncMember waits until primary p of epoch has a synchronous member
// (a secondary caught up and acknowledging), so that a failover cannot
// lose an acknowledged commit.
func (cl *Cluster) WaitSyncMember(ctx context.Context, p *Node, epoch uint64) {
	cl.t.Helper()
	WaitFor(cl.t, 30*time.Second, "a synchronous member", func() bool {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		s, err := cl.Session().ReadSync(rctx)
		return err == nil && s.Epoch == epoch && s.Primary == p.Name() && len(s.Members) > 0
	}, cl.Status)
}
