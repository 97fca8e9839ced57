package election

import (
	"time"

	"github.com/zrs-go/zrs/storage"
)

// NodeInfo is what a node publishes in its ephemeral znode nodes/<name>.
type NodeInfo struct {
	// Name is the node's unique name in the cluster.
	Name string
	// ZEOAddr is the host:port ZEO clients connect to.
	ZEOAddr string
	// ReplAddr is the host:port the node serves replication on; empty if it
	// serves none.
	ReplAddr string
	// Role is the node's role as it last published it.
	Role Role
	// Epoch is the epoch of the primary the node serves as or follows.
	Epoch uint64
	// LastTid is the last transaction the node has durably applied.
	LastTid storage.Tid
	// Upstream is the name of the node it replicates from, if any.
	Upstream string
	// Priority breaks ties between equally fresh nodes: higher wins.
	Priority int
	// NoFailover marks a node that never runs for primary.
	NoFailover bool
	// Settled reports that the node has finished applying everything it
	// received, so that its LastTid is final until new data arrives. Only a
	// settled node may run for primary.
	Settled bool
}

// PrimaryInfo is the content of the ephemeral primary znode.
type PrimaryInfo struct {
	// Name is the primary's node name.
	Name string
	// ZEOAddr is where read-write clients connect.
	ZEOAddr string
	// ReplAddr is where secondaries replicate from.
	ReplAddr string
	// Epoch is the epoch the primary won.
	Epoch uint64
	// Owned reports that the znode's EphemeralOwner is the observing node's
	// current ZooKeeper session. The caller fills it in; it is what
	// distinguishes "I am primary" from a znode left over from an earlier
	// session of the same node, which a primary must not trust.
	Owned bool
}

// SyncInfo is the content of the persistent sync znode, written by the
// primary in synchronous mode.
type SyncInfo struct {
	// Epoch is the epoch of the primary that wrote it.
	Epoch uint64
	// Primary is that primary's name.
	Primary string
	// Members are the secondaries that have acknowledged every commit
	// acknowledged to a client. Empty means the primary degraded to
	// asynchronous replication.
	Members []string
}

// View is the cluster as one node sees it at one moment. The caller builds
// it from its ZooKeeper watches and local state; the Elector only reads it.
type View struct {
	// Self is the observing node's name. It must be the same in every view
	// stepped into one Elector.
	Self string
	// Connected reports that the ZooKeeper session is healthy (HasSession).
	// When false the rest of the view may be out of date.
	Connected bool
	// Nodes are the live nodes: the content of every nodes/<name> znode,
	// keyed by name, including the observing node's own.
	Nodes map[string]NodeInfo
	// Primary is the content of the primary znode, nil when it is absent.
	Primary *PrimaryInfo
	// Epoch is the value of the epoch znode.
	Epoch uint64
	// EpochVersion is the ZooKeeper version (Stat.Version) of the epoch znode
	// read together with Epoch. RunForPrimary hands it back so that the
	// caller's Multi checks exactly the version the decision was based on.
	EpochVersion int32
	// Sync is the content of the sync znode, nil when it is absent.
	Sync *SyncInfo
	// SyncMode reports that synchronous replication is configured
	// (replication.synchronous > 0).
	SyncMode bool
	// LastSeenPrimaryTid is the last tid this node received from upstream
	// before the primary vanished; the MaxLagOnFailover guard measures
	// candidates against it. Zero means unknown (no guard).
	LastSeenPrimaryTid storage.Tid
	// ConfiguredUpstream is the node name a cascading secondary is
	// configured to replicate from; empty to follow the primary.
	ConfiguredUpstream string
	// Now is the time of the view, used to measure the settle delay.
	Now time.Time
	// Paused reports maintenance mode: no node runs for primary on its
	// own while the primary is missing (a planned switchover still runs).
	Paused bool
	// Switchover is an operator's request that the primary of epoch
	// Switchover.Epoch hand over to Switchover.To; nil when there is none.
	Switchover *SwitchoverInfo
}

// SwitchoverInfo is a planned change of primary: From, the primary of
// Epoch, hands over to To. Once the primary znode is gone at that epoch,
// only To runs for primary, at once (its data is complete: the old primary
// waited for it before resigning). A request for an older epoch is stale
// and ignored.
type SwitchoverInfo struct {
	From  string
	To    string
	Epoch uint64
}
