package node

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/zrs-go/zrs/election"
	"github.com/zrs-go/zrs/storage"
)

// Status is a node's view of itself, as /status shows it.
type Status struct {
	Name    string `json:"name"`
	Cluster string `json:"cluster,omitempty"`
	// Mode is "static" or "zookeeper".
	Mode string `json:"mode"`
	// Role is candidate, primary, secondary or fenced in ZooKeeper mode;
	// primary (writable), secondary (replicate_from) or readonly in static
	// mode.
	Role string `json:"role"`
	// Writable is true while the node accepts commits: a primary that is
	// not fenced (what /primary checks).
	Writable bool `json:"writable"`
	// Replicating is true while the node is a read-only secondary
	// applying its upstream's transactions (what /replica checks).
	Replicating bool   `json:"replicating"`
	Fenced      bool   `json:"fenced"`
	FenceReason string `json:"fence_reason,omitempty"`
	// Epoch is the epoch served as primary or followed (0 in static mode).
	Epoch       uint64     `json:"epoch"`
	LastTid     string     `json:"last_tid"`      // 16 hex digits
	LastTidTime *time.Time `json:"last_tid_time"` // null for an empty storage
	// LagSeconds and LagTransactions are a secondary's replication lag
	// (null on other roles; LagTransactions is also null when the
	// upstream does not say, as a zc.zrs primary).
	LagSeconds      *float64 `json:"lag_seconds"`
	LagTransactions *int     `json:"lag_transactions"`
	// Upstream is the node followed (ZooKeeper mode) or the
	// replicate_from address (static mode); UpstreamAddress is where the
	// replica connects.
	Upstream             string `json:"upstream"`
	UpstreamAddress      string `json:"upstream_address,omitempty"`
	ReplicationConnected bool   `json:"replication_connected"`
	// ReplicationStopped says why a static secondary stopped (its data
	// is ahead of or diverged from its upstream's).
	ReplicationStopped string `json:"replication_stopped,omitempty"`
	// Synchronous is true when this node is in the current synchronous
	// set: a listed member, or the primary of a set with members.
	Synchronous bool     `json:"synchronous"`
	SyncMembers []string `json:"sync_members"`
	// Secondaries are the zrs-go/1 secondaries streaming from this node,
	// by name; SecondaryConnections counts every replication connection
	// (zc.zrs secondaries included).
	Secondaries          map[string]SecondaryStatus `json:"secondaries"`
	SecondaryConnections int                        `json:"secondary_connections"`
	// Clients counts connected ZEO clients.
	Clients   int              `json:"clients"`
	ZooKeeper *ZooKeeperStatus `json:"zookeeper,omitempty"`
}

// SecondaryStatus is what a node knows of one of its secondaries.
type SecondaryStatus struct {
	Acked           string     `json:"acked"`
	AckedTime       *time.Time `json:"acked_time"`
	LagSeconds      float64    `json:"lag_seconds"`
	LagTransactions int        `json:"lag_transactions"`
}

// ZooKeeperStatus is the node's ZooKeeper session and what it last read
// of the cluster.
type ZooKeeperStatus struct {
	// State is connecting, connected, disconnected, expired or closed.
	State string `json:"state"`
	// Session is the session id (hex), "" before the first.
	Session string `json:"session"`
	Server  string `json:"server,omitempty"`
	// Primary names the node in the primary znode, "" when none.
	Primary string `json:"primary"`
	// Paused is the maintenance flag (no automatic failover).
	Paused bool `json:"paused"`
}

// Status returns the node's current status. In ZooKeeper mode it reads
// the sync znode (bounded by syncReadTimeout) for the synchronous set.
func (n *Node) Status() Status {
	rs := n.roleState()
	z := n.zeo
	last := n.store.LastTransaction()
	st := Status{
		Name:        n.cfg.Name,
		Cluster:     n.cfg.Cluster,
		Mode:        "static",
		Role:        rs.role,
		Writable:    n.acceptsCommitsIn(rs),
		Replicating: rs.replicating,
		Fenced:      z.Fenced(),
		FenceReason: z.fenceReason(),
		Epoch:       z.Epoch(),
		LastTid:     last.String(),
		LastTidTime: tidTime(last),
		Upstream:    rs.upstream,
		SyncMembers: []string{},
		Secondaries: map[string]SecondaryStatus{},
		Clients:     z.clientCount(),
	}
	if r := n.replica; r != nil && rs.replicating {
		lag := r.Lag()
		st.LagSeconds = &lag.Seconds
		if lag.Transactions >= 0 {
			st.LagTransactions = &lag.Transactions
		}
		st.UpstreamAddress = r.upstreamAddr()
		st.ReplicationConnected = lag.Connected
		if err := r.Stopped(); err != nil {
			st.ReplicationStopped = err.Error()
		}
	}
	if f := n.feed; f != nil {
		for name, l := range f.Lags() {
			st.Secondaries[name] = SecondaryStatus{Acked: l.Acked.String(), AckedTime: tidTime(l.Acked),
				LagSeconds: l.Seconds, LagTransactions: l.Transactions}
		}
		st.SecondaryConnections = len(f.Secondaries())
	}
	if snap := rs.snap; snap != nil {
		st.Mode = "zookeeper"
		zs := &ZooKeeperStatus{State: snap.Session.State.String(), Server: snap.Session.Server,
			Primary: snap.Primary, Paused: snap.Paused}
		if snap.Session.SessionID != 0 {
			zs.Session = fmt.Sprintf("0x%x", uint64(snap.Session.SessionID))
		}
		st.ZooKeeper = zs
		sy := snap.Sync
		if snap.sess != nil && snap.Session.HasSession() {
			// The cached record is only refreshed on elections; the
			// primary rewrites it as secondaries join and leave.
			ctx, cancel := context.WithTimeout(context.Background(), syncReadTimeout)
			if fresh, err := snap.sess.ReadSync(ctx); err == nil {
				sy = fresh
			}
			cancel()
		}
		if sy.Epoch == snap.Epoch && snap.Epoch != 0 && len(sy.Members) > 0 {
			st.SyncMembers = slices.Clone(sy.Members)
			sort.Strings(st.SyncMembers)
			st.Synchronous = slices.Contains(sy.Members, n.cfg.Name) || sy.Primary == n.cfg.Name
		}
	}
	return st
}

// syncReadTimeout bounds Status's read of the sync znode.
const syncReadTimeout = time.Second

func tidTime(t storage.Tid) *time.Time {
	if t == 0 {
		return nil
	}
	tm := t.Time()
	return &tm
}

// roleState is the node's role as the endpoints and metrics see it.
type roleState struct {
	role string
	// upstream is the node followed (ZooKeeper mode) or the
	// replicate_from address (static mode).
	upstream string
	// replicating: a read-only secondary applying its upstream's
	// transactions.
	replicating bool
	isPrimary   bool             // the primary role (fenced or not)
	snap        *clusterSnapshot // ZooKeeper mode
}

func (n *Node) roleState() roleState {
	if c := n.cluster; c != nil {
		snap := c.snapshot()
		rs := roleState{role: snap.Role.String(), upstream: snap.Upstream, snap: &snap,
			isPrimary: snap.Role == election.Primary}
		rs.replicating = snap.Role == election.Secondary && n.replica != nil
		return rs
	}
	switch {
	case n.replica != nil:
		return roleState{role: election.Secondary.String(), upstream: n.cfg.Replication.ReplicateFrom,
			replicating: n.zeo.ReadOnly()}
	case !n.zeo.ReadOnly():
		return roleState{role: election.Primary.String(), isPrimary: true}
	default:
		return roleState{role: roleReadOnly}
	}
}

// acceptsCommits reports whether the node takes commits right now: a
// writable primary, neither fenced nor past its ZooKeeper lease.
func (n *Node) acceptsCommits() bool { return n.acceptsCommitsIn(n.roleState()) }

func (n *Node) acceptsCommitsIn(rs roleState) bool {
	return rs.isPrimary && !n.zeo.ReadOnly() && n.zeo.fenceError() == nil
}

// clientCount returns the number of connected ZEO clients.
func (z *ZEOService) clientCount() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return len(z.conns)
}

// fenceReason says why commits are fenced, "" when they are not.
func (z *ZEOService) fenceReason() string {
	if r := z.fence.Load(); r != nil {
		return *r
	}
	return ""
}

// upstreamAddr returns the address the replica replicates from.
func (r *Replica) upstreamAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.upstream
}
