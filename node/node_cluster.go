package node

import (
	"context"

	"github.com/zrs-go/zrs/registry"
)

// setEpoch tells the ZEO service the epoch the node serves or follows, for
// clients that refuse servers of an older epoch.
func (n *Node) setEpoch(e uint64) { n.zeo.SetEpoch(e) }

// startSync turns on synchronous replication for a new primary's term:
// the sync znode names this primary with no members yet (secondaries join
// once caught up), and commits are acknowledged only as the feed allows.
func (n *Node) startSync(ctx context.Context, sess *registry.Session, term registry.Term) error {
	if n.cfg.Replication.Synchronous == 0 || n.feed == nil {
		// Asynchronous: what the replica held for its old upstream's
		// release is this primary's history now, visible at once.
		n.store.SetCommitGate(nil)
		if n.replica != nil {
			n.replica.ReleaseHold()
		}
		return nil
	}
	if err := sess.WriteSync(ctx, term, registry.SyncRecord{Primary: n.cfg.Name, Members: []string{}}); err != nil {
		return err
	}
	n.store.SetCommitGate(n.feed.Gate())
	return nil
}

// stopSync stops gating commits on acknowledgements (demotion). Commits
// still held for acknowledgements are published locally: their clients
// were dropped first, so none of them is acknowledged, and the rejoin
// handshake moves whatever the new primary lacks into a side file.
func (n *Node) stopSync() {
	if n.feed != nil {
		n.feed.StopSync()
	}
	n.store.SetCommitGate(nil)
}
