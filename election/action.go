package election

import "fmt"

// Action is one thing the caller must do, in the order Step returns them.
// The set of actions is closed: RunForPrimary, Promote, Follow, Fence,
// Unfence and Demote.
type Action interface {
	fmt.Stringer
	// Why returns the human-readable reason for the action, for logs.
	Why() string

	isAction()
}

// RunForPrimary asks the caller to try to become primary with one ZooKeeper
// Multi: check that the epoch znode still has version EpochVersion, set it
// to NewEpoch, and create the ephemeral primary znode naming this node at
// NewEpoch. At most one such Multi can succeed per epoch. Success shows up
// in a later view as a primary znode naming this node, which makes the next
// Step return Promote; failure needs no report, the next view tells.
type RunForPrimary struct {
	// Epoch is the epoch znode's value the decision was based on.
	Epoch uint64
	// EpochVersion is the epoch znode's version the Multi must check.
	EpochVersion int32
	// NewEpoch is the value to set, Epoch+1; the new primary's epoch.
	NewEpoch uint64
	// Reason explains the decision.
	Reason string
}

// Promote asks the caller to become the primary of epoch Epoch: stop
// replicating, open the storage for writes, publish the providers znode and
// role, and serve commits under Epoch.
type Promote struct {
	Epoch  uint64
	Reason string
}

// Follow asks the caller to (re-)point replication at node Upstream, served
// at ReplAddr, under the primary of epoch Epoch, and to publish the
// secondary role. The replication handshake decides whether this node must
// rewind first.
type Follow struct {
	Upstream string
	ReplAddr string
	Epoch    uint64
	Reason   string
}

// Fence asks a primary to stop accepting commits at once (votes fail with a
// retryable error) because its ZooKeeper session is in doubt, to stop
// serving replication, and to publish the fenced role when it can.
type Fence struct {
	Reason string
}

// Unfence asks a fenced primary to accept commits again under Epoch: it has
// verified that the primary znode is still its own.
type Unfence struct {
	Epoch  uint64
	Reason string
}

// Demote asks a primary (fenced or not) to stop being primary: accept no
// commits, withdraw its providers znode and become a candidate. A Follow
// usually comes next, whose handshake detects divergence.
type Demote struct {
	Reason string
}

func (RunForPrimary) isAction() {}
func (Promote) isAction()       {}
func (Follow) isAction()        {}
func (Fence) isAction()         {}
func (Unfence) isAction()       {}
func (Demote) isAction()        {}

// Why returns the reason for the action.
func (a RunForPrimary) Why() string { return a.Reason }

// Why returns the reason for the action.
func (a Promote) Why() string { return a.Reason }

// Why returns the reason for the action.
func (a Follow) Why() string { return a.Reason }

// Why returns the reason for the action.
func (a Fence) Why() string { return a.Reason }

// Why returns the reason for the action.
func (a Unfence) Why() string { return a.Reason }

// Why returns the reason for the action.
func (a Demote) Why() string { return a.Reason }

// String describes the action and its reason on one line.
func (a RunForPrimary) String() string {
	return fmt.Sprintf("run for primary (epoch %d, version %d -> epoch %d): %s",
		a.Epoch, a.EpochVersion, a.NewEpoch, a.Reason)
}

// String describes the action and its reason on one line.
func (a Promote) String() string {
	return fmt.Sprintf("promote to primary of epoch %d: %s", a.Epoch, a.Reason)
}

// String describes the action and its reason on one line.
func (a Follow) String() string {
	return fmt.Sprintf("follow %s at %s (epoch %d): %s", a.Upstream, a.ReplAddr, a.Epoch, a.Reason)
}

// String describes the action and its reason on one line.
func (a Fence) String() string { return "fence: " + a.Reason }

// String describes the action and its reason on one line.
func (a Unfence) String() string {
	return fmt.Sprintf("unfence at epoch %d: %s", a.Epoch, a.Reason)
}

// String describes the action and its reason on one line.
func (a Demote) String() string { return "demote to candidate: " + a.Reason }
