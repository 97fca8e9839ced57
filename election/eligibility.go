package election

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zrs-go/zrs/storage"
)

// rule is the eligibility rule a view calls for.
type rule int

const (
	// freshestRule: the node holds the highest last tid among live
	// failover-capable nodes and is within MaxLagOnFailover of the old
	// primary.
	freshestRule rule = iota
	// syncRule: the node is listed in sync.members or is sync.primary.
	syncRule
)

// ruleFor picks the eligibility rule for v and says why. Synchronous mode
// uses the sync znode only when it belongs to the current epoch and lists
// members; otherwise the primary never recorded (or gave up) synchronous
// guarantees and the freshest-node rule applies, as the design says for a
// primary that degraded to asynchronous.
func ruleFor(v View) (rule, string) {
	switch {
	case !v.SyncMode:
		return freshestRule, "asynchronous mode: freshest-node rule"
	case v.Sync == nil:
		return freshestRule, "synchronous mode without a sync znode: freshest-node rule"
	case v.Sync.Epoch != v.Epoch:
		return freshestRule, fmt.Sprintf("sync znode is from epoch %d, not %d: freshest-node rule", v.Sync.Epoch, v.Epoch)
	case len(v.Sync.Members) == 0:
		return freshestRule, "primary degraded to asynchronous (no sync members): freshest-node rule"
	}
	return syncRule, fmt.Sprintf("synchronous mode: sync members %v of primary %s", v.Sync.Members, v.Sync.Primary)
}

// sortedNames returns the keys of v.Nodes in order, so that every
// explanation is deterministic.
func sortedNames(v View) []string {
	names := make([]string, 0, len(v.Nodes))
	for name := range v.Nodes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// freshestTid returns the highest last tid among live nodes that may fail
// over (not no_failover), settled or not: an unsettled node's tid is a lower
// bound of what it will hold. No-failover nodes are left out (as Patroni
// does) so that a fresher node that can never be promoted does not block
// failover forever; it rewinds when it follows the new primary.
func freshestTid(v View) storage.Tid {
	var top storage.Tid
	for _, n := range v.Nodes {
		if !n.NoFailover && n.LastTid > top {
			top = n.LastTid
		}
	}
	return top
}

// lagOK reports whether a node at last is within maxLag of seen, the last
// tid the observer received from the old primary, and the lag measured as
// the difference of the times the tids encode. An unknown seen (zero)
// imposes no bound. A zero maxLag requires last >= seen exactly.
func lagOK(seen, last storage.Tid, maxLag time.Duration) (bool, time.Duration) {
	if seen == 0 || last >= seen {
		return true, 0
	}
	lag := seen.Time().Sub(last.Time())
	return maxLag > 0 && lag <= maxLag, lag
}

// eligible reports whether node name may run for primary in v under rule r,
// and if not, why. top is freshestTid(v).
func eligible(v View, r rule, top storage.Tid, maxLag time.Duration, name string) (bool, string) {
	n, ok := v.Nodes[name]
	switch {
	case !ok:
		return false, fmt.Sprintf("%s is not registered under nodes/", name)
	case n.NoFailover:
		return false, fmt.Sprintf("%s is no_failover", name)
	case !n.Settled:
		return false, fmt.Sprintf("%s has not finished applying what it received", name)
	}
	if r == syncRule {
		if name == v.Sync.Primary || slices.Contains(v.Sync.Members, name) {
			return true, ""
		}
		return false, fmt.Sprintf("%s is neither a sync member %v nor the sync primary %s", name, v.Sync.Members, v.Sync.Primary)
	}
	if n.LastTid != top {
		return false, fmt.Sprintf("%s has last tid %s, below the freshest %s", name, n.LastTid, top)
	}
	if ok, lag := lagOK(v.LastSeenPrimaryTid, n.LastTid, maxLag); !ok {
		return false, fmt.Sprintf("%s at %s is %v behind the old primary's %s (max_lag_on_failover %v)",
			name, n.LastTid, lag, v.LastSeenPrimaryTid, maxLag)
	}
	return true, ""
}

// outranks reports whether a beats b among eligible nodes: the higher last
// tid first (only the synchronous rule admits different tids, and the
// fresher member loses fewer unacknowledged commits), then the higher
// priority, then the lower name.
func outranks(a, b NodeInfo) bool {
	if a.LastTid != b.LastTid {
		return a.LastTid > b.LastTid
	}
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.Name < b.Name
}

// winner returns the name of the node that should run for primary in v, or
// "" if none is eligible, with an explanation. Every node computes it from
// the same published data, so nodes that share a view agree on it. maxLag
// is the observer's MaxLagOnFailover, applied with its LastSeenPrimaryTid;
// in the freshest-node rule all candidates hold the same tid, so the guard
// admits all or none of them and cannot split the decision.
func winner(v View, maxLag time.Duration) (string, string) {
	r, ruleWhy := ruleFor(v)
	top := freshestTid(v)
	var (
		best     NodeInfo
		found    bool
		eligs    []string
		refusals []string
	)
	for _, name := range sortedNames(v) {
		ok, why := eligible(v, r, top, maxLag, name)
		if !ok {
			refusals = append(refusals, why)
			continue
		}
		n := v.Nodes[name]
		n.Name = name
		eligs = append(eligs, name)
		if !found || outranks(n, best) {
			best, found = n, true
		}
	}
	if !found {
		return "", fmt.Sprintf("no node is eligible (%s): %s", ruleWhy, strings.Join(refusals, "; "))
	}
	return best.Name, fmt.Sprintf("%s is the best of eligible %v (%s; last tid %s, priority %d)",
		best.Name, eligs, ruleWhy, best.LastTid, best.Priority)
}
