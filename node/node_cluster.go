package node

import (
	"context"

	"github.com/zrs-go/zrs/registry"
)

// setEpoch tells the ZEO service the epoch the node serves or follows, for
// clients that refuse servers of an older epoch.
func (n *Node) setEpoch(e uint64) { /* TODO(epoch): n.zeo.SetEpoch(e) */ }

// startSync turns on synchronous replication for a new primary's term:
// the sync znode names this primary with no members yet (secondaries join
// once caught up), and commits are acknowledged only as the feed allows.
func (n *Node) startSync(ctx context.Context, sess *registry.Session, term registry.Term) error {
	if n.cfg.Replication.Synchronous == 0 || n.feed == nil {
		return nil
	}
	if err := sess.WriteSync(ctx, term, registry.SyncRecord{Primary: n.cfg.Name, Members: []string{}}); err != nil {
		return err
	}
	// TODO(sync): n.store.SetCommitGate(n.feed.Gate())
	return nil
}

// stopSync stops gating commits on acknowledgements (demotion).
func (n *Node) stopSync() {
	// TODO(sync): n.store.SetCommitGate(nil)
}
