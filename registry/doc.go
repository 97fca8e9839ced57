// Package registry is a node's view of, and presence in, the cluster's
// ZooKeeper state (the layout of ../design/cluster.md): it holds one
// ZooKeeper session, registers the node under nodes/<name>, advertises its
// ZEO address for zc.zkzeo clients under providers/ or readonly/providers/,
// watches the other nodes and the primary, and runs the election's single
// Multi. It decides nothing: what to do with a view of the cluster is the
// caller's business.
//
// What it promises:
//
//   - Nothing it does blocks go-zookeeper's event loop: session events
//     arrive through zk.WithEventCallback (the library's event channel
//     drops events) and only update a status that subscribers read; watch
//     results are delivered from the package's own goroutines.
//   - Status reports at once when the session is not usable
//     (StateDisconnected, StateExpired), so that a primary can stop
//     accepting commits the moment that happens. After an expiry the
//     library sets up a new session by itself; Status.Generation counts
//     sessions, so a subscriber that missed a transition still sees that
//     the session changed.
//   - The ephemerals it owns (the node record and the provider entry) are
//     re-created with their latest data in every new session, checking
//     EphemeralOwner: a znode left by an earlier session of this Session
//     is replaced, one held by another live session is waited for (and
//     reported) rather than taken over.
//   - A node record whose only change is its last tid is written at most
//     every 100 ms; any other change is written at once.
//   - RunForPrimary either wins (epoch+1 and the ephemeral primary znode,
//     in one Multi) or returns an error that says whether another node won
//     (errors.Is(err, ErrLostRace)) or the attempt failed for another
//     reason; two sessions running for the same epoch version cannot both
//     win.
//   - While ZooKeeper is unreachable, Connect waits (forever, until its
//     context ends), logging at WARN what it is waiting for.
package registry
