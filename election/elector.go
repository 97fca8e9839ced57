package election

import (
	"fmt"
	"time"
)

// Elector is one node's election state machine. It is driven by Step and
// never does anything on its own; it is not safe for concurrent use.
type Elector struct {
	cfg  Config
	self string

	role  Role
	epoch uint64 // epoch served (Primary, Fenced) or followed (Secondary)

	upstream     string // node replicated from, when Secondary
	upstreamAddr string

	maxEpoch uint64 // highest epoch seen in any znode of any view

	lastPrimary string // name in the last consistent primary znode seen
	deposed     string // the primary before lastPrimary, if it was another node

	missingSince time.Time // when the primary znode was first seen absent
	missingEpoch uint64    // the epoch znode's value at that moment
	deadline     time.Time // when Step wants to run again; zero for never

	why string
}

// New returns an Elector in the Candidate role.
func New(cfg Config) (*Elector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Elector{cfg: cfg, role: Candidate}, nil
}

// Role returns the node's current role, to publish in nodes/<name>.
func (e *Elector) Role() Role { return e.role }

// Epoch returns the epoch the node serves as primary or follows as a
// secondary, or 0 when it has neither.
func (e *Elector) Epoch() uint64 { return e.epoch }

// Upstream returns the name of the node this one replicates from, or "".
func (e *Elector) Upstream() string { return e.upstream }

// Deadline returns when the caller must Step again even if the view has not
// changed (the end of the settle delay), and false when only a view change
// can change the decision.
func (e *Elector) Deadline() (time.Time, bool) {
	return e.deadline, !e.deadline.IsZero()
}

// Why explains the outcome of the last Step, including a decision to do
// nothing ("waiting for the settle delay", "c is fresher", ...).
func (e *Elector) Why() string { return e.why }

// Step feeds the elector the current view and returns what to do, in order.
// The caller must carry the actions out (or fail trying) before the next
// Step. Step panics if v.Self is empty or differs from an earlier view's,
// which is a programming error.
func (e *Elector) Step(v View) []Action {
	if v.Self == "" {
		panic("election: View.Self is empty")
	}
	if e.self == "" {
		e.self = v.Self
	} else if e.self != v.Self {
		panic(fmt.Sprintf("election: view of %q stepped into the elector of %q", v.Self, e.self))
	}
	e.deadline = time.Time{}

	if !v.Connected {
		return e.stepDisconnected()
	}
	if why, ok := e.checkFresh(v); !ok {
		e.why = why
		if e.role == Primary && e.maxEpoch > e.epoch {
			// The view is unusable but shows a newer epoch than ours:
			// another primary may exist. Fail closed.
			return []Action{e.fence(fmt.Sprintf("epoch %d seen while primary of epoch %d: %s", e.maxEpoch, e.epoch, why))}
		}
		return nil
	}
	e.observe(v)
	if v.Primary == nil {
		return e.stepNoPrimary(v)
	}
	e.missingSince = time.Time{}
	if v.Primary.Name == e.self {
		return e.stepSelfPrimary(v)
	}
	return e.stepOtherPrimary(v)
}

// stepDisconnected fails closed: a primary whose session is not healthy may
// already have been replaced, so it stops accepting commits at once.
func (e *Elector) stepDisconnected() []Action {
	// Peers' positions are unknown while disconnected: the settle delay
	// starts over once connected again.
	e.missingSince = time.Time{}
	if e.role == Primary {
		a := e.fence("ZooKeeper session is not healthy: the primary may already be replaced")
		e.why = a.Reason
		return []Action{a}
	}
	e.why = fmt.Sprintf("ZooKeeper session is not healthy; staying %s", e.role)
	return nil
}

// checkFresh rejects a view older than one already seen (rule: never act on
// a stale view) and a torn view whose znodes disagree about the epoch. It
// raises maxEpoch to the highest epoch the view shows either way.
func (e *Elector) checkFresh(v View) (string, bool) {
	high := v.Epoch
	if v.Primary != nil {
		high = max(high, v.Primary.Epoch)
	}
	if v.Sync != nil {
		high = max(high, v.Sync.Epoch)
	}
	seen := e.maxEpoch
	e.maxEpoch = max(e.maxEpoch, high)
	switch {
	case v.Epoch < seen:
		return fmt.Sprintf("stale view ignored: epoch %d is below epoch %d already seen", v.Epoch, seen), false
	case v.Primary != nil && v.Primary.Epoch != v.Epoch:
		return fmt.Sprintf("torn view ignored: primary znode %s is at epoch %d but the epoch znode says %d",
			v.Primary.Name, v.Primary.Epoch, v.Epoch), false
	case v.Sync != nil && v.Sync.Epoch > v.Epoch:
		return fmt.Sprintf("torn view ignored: sync znode is at epoch %d but the epoch znode says %d",
			v.Sync.Epoch, v.Epoch), false
	}
	return "", true
}

// observe remembers which node was primary before the current one: the
// failed node a cascading secondary must not keep as its upstream.
func (e *Elector) observe(v View) {
	if v.Primary == nil {
		return
	}
	if e.lastPrimary != "" && e.lastPrimary != v.Primary.Name {
		e.deposed = e.lastPrimary
	}
	e.lastPrimary = v.Primary.Name
}

// stepNoPrimary handles a connected, fresh view without a primary znode.
func (e *Elector) stepNoPrimary(v View) []Action {
	var acts []Action
	if e.role.isPrimaryLike() {
		acts = append(acts, e.demote(fmt.Sprintf(
			"primary znode is gone while this node was %s of epoch %d: its session expired or the znode was deleted",
			e.role, e.epoch)))
	}
	if e.missingSince.IsZero() || e.missingEpoch != v.Epoch {
		e.missingSince, e.missingEpoch = v.Now, v.Epoch
	}
	if a, ok := e.maybeRun(v); ok {
		acts = append(acts, a)
	}
	return acts
}

// maybeRun decides whether this node runs for primary; e.why says why not.
func (e *Elector) maybeRun(v View) (Action, bool) {
	me, registered := v.Nodes[e.self]
	switch {
	case e.cfg.NoFailover:
		e.why = "primary missing; this node is configured no_failover and never runs"
		return nil, false
	case !registered:
		e.why = "primary missing; this node is not registered under nodes/ yet"
		return nil, false
	case !me.Settled:
		e.why = "primary missing; waiting until this node has applied what it received"
		return nil, false
	}
	if sw := v.Switchover; sw != nil && sw.Epoch == v.Epoch {
		if _, alive := v.Nodes[sw.To]; alive {
			if sw.To != e.self {
				e.why = fmt.Sprintf("primary missing: switchover from %s to %s at epoch %d in progress; not running", sw.From, sw.To, sw.Epoch)
				return nil, false
			}
			a := RunForPrimary{Epoch: v.Epoch, EpochVersion: v.EpochVersion, NewEpoch: v.Epoch + 1,
				Reason: fmt.Sprintf("switchover from %s (epoch %d) to this node", sw.From, sw.Epoch)}
			e.why = a.Reason
			return a, true
		}
	}
	if v.Paused {
		e.why = "primary missing; the cluster is paused for maintenance: no automatic failover"
		return nil, false
	}
	if waited := v.Now.Sub(e.missingSince); waited < e.cfg.SettleDelay {
		e.deadline = e.missingSince.Add(e.cfg.SettleDelay)
		e.why = fmt.Sprintf("primary missing since %s; settling for %v more so peers publish their last tid",
			e.missingSince.Format(time.RFC3339Nano), e.cfg.SettleDelay-waited)
		return nil, false
	}
	best, why := winner(v, e.cfg.MaxLagOnFailover)
	if best != e.self {
		r, _ := ruleFor(v)
		if ok, mine := eligible(v, r, freshestTid(v), e.cfg.MaxLagOnFailover, e.self); !ok {
			why = mine + "; " + why
		}
		e.why = "primary missing; not running: " + why
		return nil, false
	}
	a := RunForPrimary{
		Epoch:        v.Epoch,
		EpochVersion: v.EpochVersion,
		NewEpoch:     v.Epoch + 1,
		Reason: fmt.Sprintf("primary missing since %s (settle delay %v over): %s",
			e.missingSince.Format(time.RFC3339Nano), e.cfg.SettleDelay, why),
	}
	e.why = a.Reason
	return a, true
}

// stepSelfPrimary handles a view whose primary znode names this node.
func (e *Elector) stepSelfPrimary(v View) []Action {
	p := v.Primary
	if !p.Owned {
		if e.role.isPrimaryLike() {
			a := e.demote(fmt.Sprintf(
				"primary znode names this node but belongs to an earlier ZooKeeper session (epoch %d): this session is new", p.Epoch))
			e.why = a.Reason
			return []Action{a}
		}
		e.why = fmt.Sprintf("primary znode naming this node (epoch %d) is left over from an earlier session; waiting for it to expire", p.Epoch)
		return nil
	}
	switch {
	case e.role == Primary && e.epoch == p.Epoch:
		e.why = fmt.Sprintf("primary of epoch %d", p.Epoch)
		return nil
	case e.role == Fenced && e.epoch == p.Epoch:
		e.role = Primary
		a := Unfence{Epoch: p.Epoch, Reason: fmt.Sprintf(
			"session healthy again and the primary znode is still this node's at epoch %d", p.Epoch)}
		e.why = a.Reason
		return []Action{a}
	}
	// Our session created the znode: we won the Multi for p.Epoch.
	from := e.role
	e.role, e.epoch = Primary, p.Epoch
	e.upstream, e.upstreamAddr = "", ""
	a := Promote{Epoch: p.Epoch, Reason: fmt.Sprintf(
		"won the election for epoch %d (was %s): the primary znode is owned by this session", p.Epoch, from)}
	e.why = a.Reason
	return []Action{a}
}

// stepOtherPrimary handles a view whose primary znode names another node.
func (e *Elector) stepOtherPrimary(v View) []Action {
	p := v.Primary
	var acts []Action
	if e.role.isPrimaryLike() {
		acts = append(acts, e.demote(fmt.Sprintf("primary znode names %s at epoch %d; this node was %s of epoch %d",
			p.Name, p.Epoch, e.role, e.epoch)))
	}
	name, addr, why := e.upstreamFor(v)
	if addr == "" {
		e.why = fmt.Sprintf("primary %s (epoch %d) publishes no replication address; not following", p.Name, p.Epoch)
		return acts
	}
	if e.role == Secondary && e.upstream == name && e.upstreamAddr == addr && e.epoch == p.Epoch {
		e.why = fmt.Sprintf("secondary of epoch %d; %s", p.Epoch, why)
		return acts
	}
	e.role, e.epoch = Secondary, p.Epoch
	e.upstream, e.upstreamAddr = name, addr
	a := Follow{Upstream: name, ReplAddr: addr, Epoch: p.Epoch, Reason: fmt.Sprintf("primary is %s at epoch %d; %s", p.Name, p.Epoch, why)}
	e.why = a.Reason
	return append(acts, a)
}

// upstreamFor picks the node to replicate from while v.Primary names
// another node: the configured upstream of a cascading secondary when it is
// alive and usable, else the primary.
func (e *Elector) upstreamFor(v View) (name, addr, why string) {
	p := v.Primary
	u := v.ConfiguredUpstream
	toPrimary := func(why string) (string, string, string) { return p.Name, p.ReplAddr, why }
	switch {
	case u == "":
		return toPrimary("following the primary")
	case u == p.Name:
		return toPrimary(fmt.Sprintf("configured upstream %s is the primary", u))
	case u == e.self:
		return toPrimary("configured upstream is this node itself; following the primary")
	}
	n, alive := v.Nodes[u]
	switch {
	case !alive:
		return toPrimary(fmt.Sprintf("configured upstream %s is not alive; following the primary", u))
	case n.Role.isPrimaryLike():
		return toPrimary(fmt.Sprintf("configured upstream %s still claims role %s; following the primary", u, n.Role))
	case u == e.deposed && n.Epoch < p.Epoch:
		return toPrimary(fmt.Sprintf("configured upstream %s is the failed primary and has not rejoined under epoch %d; following the primary", u, p.Epoch))
	case n.Upstream == e.self:
		return toPrimary(fmt.Sprintf("configured upstream %s replicates from this node; following the primary", u))
	case n.ReplAddr == "":
		return toPrimary(fmt.Sprintf("configured upstream %s serves no replication; following the primary", u))
	}
	return u, n.ReplAddr, fmt.Sprintf("following configured upstream %s", u)
}

// fence moves a primary to Fenced.
func (e *Elector) fence(reason string) Fence {
	e.role = Fenced
	return Fence{Reason: reason}
}

// demote moves a primary or fenced node back to Candidate.
func (e *Elector) demote(reason string) Demote {
	e.role, e.epoch = Candidate, 0
	e.upstream, e.upstreamAddr = "", ""
	return Demote{Reason: reason}
}
