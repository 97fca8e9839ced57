// Package election decides what one zrs node should do in a
// ZooKeeper-coordinated cluster: run for primary, promote itself, follow
// another node, fence, unfence or demote. It implements the Election and
// Fencing sections of the cluster design (shared/design/cluster.md).
//
// The package is pure decision logic in the style of etcd's raft package:
// it performs no I/O, starts no goroutines, reads no clock and uses no
// randomness. The caller (the code that talks to ZooKeeper) assembles a
// View of the cluster (what nodes/*, primary, epoch and sync hold, whether
// the session is healthy, and the current time) and passes it to
// Elector.Step, which returns the Actions to carry out, in order, before the
// next Step. The caller steps again whenever the view changes, and no later
// than Elector.Deadline.
//
// The package promises:
//
//   - A node starts as a Candidate and becomes Primary only after it has
//     issued RunForPrimary and then been shown a view in which the primary
//     znode names it, carries the current epoch and is owned by its current
//     ZooKeeper session.
//   - Given the same view of the cluster, at most one node issues
//     RunForPrimary: every node ranks the same published data the same way
//     and only the best eligible node runs. The caller's Multi (check the
//     epoch version, set the epoch, create the ephemeral primary) makes at
//     most one attempt per epoch succeed even when views differ.
//   - A node that is not connected never runs and never promotes; a Primary
//     whose session is in doubt fences at once (fail closed), unfences only
//     after the primary znode is shown to still be its own at its epoch, and
//     demotes otherwise.
//   - A view older than one already seen (a lower epoch), or a torn view
//     whose znodes disagree about the epoch, is never acted upon, except
//     that a Primary fences when such a view shows an epoch newer than its
//     own.
//   - Every Action carries a human-readable reason, and Elector.Why explains
//     the last Step even when it decided to do nothing.
//   - The same sequence of views always yields the same sequence of actions.
//
// Divergence handling (rewinding a node that holds transactions the new
// primary never had) is not decided here: it follows from the replication
// handshake that a Follow starts.
package election
