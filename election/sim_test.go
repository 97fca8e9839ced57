package election

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zrs-go/zrs/storage"
)

// sim is a toy cluster for scenario tests: a ZooKeeper ensemble reduced to
// the znodes the election reads (nodes/*, primary, epoch, sync), and one
// Elector per node. Stepping a node builds its view, steps its elector and
// carries the actions out the way the real driver would: RunForPrimary runs
// the Multi against the simulated znodes; every step republishes the node's
// role, epoch and upstream.
type sim struct {
	t   testing.TB
	now time.Time

	epoch    uint64
	version  int32
	primary  *simPrimary
	sync     *SyncInfo
	syncMode bool

	paused     bool
	switchover *SwitchoverInfo

	sessions int // last session id handed out
	nodes    map[string]*simNode
}

// simPrimary is the primary znode with its ephemeral owner.
type simPrimary struct {
	info    PrimaryInfo
	session int
}

// simNode is one node: its process, its session and what it published.
type simNode struct {
	e         *Elector
	cfg       Config
	alive     bool // process running
	connected bool // session healthy as seen by the node
	session   int  // the node's session; 0 once the server expired it
	info      NodeInfo
	lastSeen  storage.Tid
	upstream  string // configured upstream (cascading)
}

func newSim(t testing.TB, names ...string) *sim {
	t.Helper()
	s := &sim{t: t, now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), nodes: map[string]*simNode{}}
	for _, name := range names {
		s.add(name, Default())
	}
	return s
}

// add starts a node with cfg; it registers with a fresh session.
func (s *sim) add(name string, cfg Config) *simNode {
	e, err := New(cfg)
	if err != nil {
		s.t.Fatalf("New(%+v): %v", cfg, err)
	}
	s.sessions++
	n := &simNode{e: e, cfg: cfg, alive: true, connected: true, session: s.sessions,
		info: NodeInfo{Name: name, ZEOAddr: name + ":8100", ReplAddr: name + ":5000",
			Priority: cfg.Priority, NoFailover: cfg.NoFailover, Settled: true}}
	s.nodes[name] = n
	return n
}

func (s *sim) node(name string) *simNode {
	n, ok := s.nodes[name]
	if !ok {
		s.t.Fatalf("no node %q", name)
	}
	return n
}

// registered reports whether nodes/<name> exists: the node's session is
// alive at the server.
func (n *simNode) registered() bool { return n.alive && n.session != 0 }

// view is what node name sees now.
func (s *sim) view(name string) View {
	me := s.node(name)
	v := View{
		Self: name, Connected: me.alive && me.connected, Nodes: map[string]NodeInfo{},
		Epoch: s.epoch, EpochVersion: s.version, SyncMode: s.syncMode,
		LastSeenPrimaryTid: me.lastSeen, ConfiguredUpstream: me.upstream, Now: s.now,
		Paused: s.paused, Switchover: s.switchover,
	}
	for other, n := range s.nodes {
		if n.registered() {
			v.Nodes[other] = n.info
		}
	}
	if s.primary != nil {
		p := s.primary.info
		p.Owned = s.primary.session == me.session
		v.Primary = &p
	}
	if s.sync != nil {
		c := *s.sync
		c.Members = slices.Clone(c.Members)
		v.Sync = &c
	}
	return v
}

// step steps node name on its current view and carries out the actions.
func (s *sim) step(name string) []Action {
	return s.stepView(name, s.view(name))
}

// stepView steps node name on v (possibly an old snapshot) and carries out
// the actions against the current state.
func (s *sim) stepView(name string, v View) []Action {
	s.t.Helper()
	n := s.node(name)
	acts := n.e.Step(v)
	for _, a := range acts {
		if a.Why() == "" {
			s.t.Errorf("%s: action %T has no reason", name, a)
		}
		if run, ok := a.(RunForPrimary); ok {
			s.multi(name, run)
		}
	}
	n.info.Role, n.info.Epoch, n.info.Upstream = n.e.Role(), n.e.Epoch(), n.e.Upstream()
	return acts
}

// multi is the election Multi: check the epoch version, set epoch, create
// the ephemeral primary. It fails if any part fails.
func (s *sim) multi(name string, a RunForPrimary) bool {
	n := s.node(name)
	if !n.alive || !n.connected || n.session == 0 || s.version != a.EpochVersion || s.primary != nil {
		return false
	}
	s.epoch, s.version = a.NewEpoch, s.version+1
	s.primary = &simPrimary{info: PrimaryInfo{Name: name, ZEOAddr: n.info.ZEOAddr, ReplAddr: n.info.ReplAddr, Epoch: a.NewEpoch}, session: n.session}
	return true
}

// want steps node name and checks its actions, in short form.
func (s *sim) want(name string, want ...string) {
	s.t.Helper()
	acts := s.step(name)
	if got := short(acts); !slices.Equal(got, want) {
		s.t.Fatalf("%s at +%v: got actions %q, want %q\n  why: %s\n  actions: %v",
			name, s.elapsed(), got, want, s.node(name).e.Why(), acts)
	}
}

// wantNothing steps each node and checks that none acts.
func (s *sim) wantNothing(names ...string) {
	s.t.Helper()
	for _, name := range names {
		s.want(name)
	}
}

func (s *sim) elapsed() time.Duration {
	return s.now.Sub(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
}

func (s *sim) advance(d time.Duration) { s.now = s.now.Add(d) }

// kill stops node name; its session expires and its ephemerals vanish.
func (s *sim) kill(name string) {
	n := s.node(name)
	n.alive = false
	s.expire(name)
}

// partition cuts node name off ZooKeeper; its session lives on at the
// server until expire.
func (s *sim) partition(name string) { s.node(name).connected = false }

// expire ends node name's session at the server: its ephemerals vanish.
func (s *sim) expire(name string) {
	n := s.node(name)
	if s.primary != nil && s.primary.session == n.session {
		s.primary = nil
	}
	n.session = 0
}

// resign deletes the primary znode, as a primary handing over does.
func (s *sim) resign(name string) {
	s.t.Helper()
	if s.primary == nil || s.primary.info.Name != name {
		s.t.Fatalf("%s resigns but is not the primary", name)
	}
	s.primary = nil
}

// heal reconnects node name, with a new session if the old one expired
// (the node then re-registers nodes/<name>).
func (s *sim) heal(name string) {
	n := s.node(name)
	n.connected = true
	if n.session == 0 {
		s.sessions++
		n.session = s.sessions
	}
}

// restart kills node name and starts it again with a new elector and
// session, keeping its data.
func (s *sim) restart(name string) {
	old := s.node(name)
	s.kill(name)
	n := s.add(name, old.cfg)
	n.info.LastTid, n.lastSeen, n.upstream = old.info.LastTid, old.lastSeen, old.upstream
}

// commit makes the primary commit tid and the given nodes receive it.
func (s *sim) commit(tid storage.Tid, to ...string) {
	s.t.Helper()
	if s.primary == nil {
		s.t.Fatalf("commit without a primary")
	}
	s.node(s.primary.info.Name).info.LastTid = tid
	for _, name := range to {
		n := s.node(name)
		n.info.LastTid, n.lastSeen = tid, tid
	}
}

// electFirst runs the first election of a fresh cluster: everyone settles,
// the expected winner runs and promotes, the others follow it (or their
// configured upstream).
func (s *sim) electFirst(winner string) {
	s.t.Helper()
	for _, name := range s.sorted() {
		s.want(name)
	}
	s.advance(DefaultSettleDelay)
	s.want(winner, "run 1")
	s.want(winner, "promote 1")
	for _, name := range s.sorted() {
		if name == winner {
			continue
		}
		if up := s.node(name).upstream; up != "" && up != winner {
			s.want(name, "follow "+up+"@1")
		} else {
			s.want(name, "follow "+winner+"@1")
		}
	}
}

func (s *sim) sorted() []string {
	names := make([]string, 0, len(s.nodes))
	for name := range s.nodes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// short renders actions compactly for scripts: "run 2", "promote 2",
// "follow a@2", "fence", "unfence 2", "demote".
func short(acts []Action) []string {
	out := []string{}
	for _, a := range acts {
		switch a := a.(type) {
		case RunForPrimary:
			out = append(out, fmt.Sprintf("run %d", a.NewEpoch))
		case Promote:
			out = append(out, fmt.Sprintf("promote %d", a.Epoch))
		case Follow:
			out = append(out, fmt.Sprintf("follow %s@%d", a.Upstream, a.Epoch))
		case Fence:
			out = append(out, "fence")
		case Unfence:
			out = append(out, fmt.Sprintf("unfence %d", a.Epoch))
		case Demote:
			out = append(out, "demote")
		default:
			out = append(out, fmt.Sprintf("%T", a))
		}
	}
	return out
}

// tid builds a tid n seconds after a fixed base time.
func tid(sec float64) storage.Tid {
	base := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	return storage.TidFromTime(base.Add(time.Duration(sec * float64(time.Second))))
}

func wantWhy(t testing.TB, e *Elector, substr string) {
	t.Helper()
	if !strings.Contains(e.Why(), substr) {
		t.Fatalf("Why() = %q, want it to mention %q", e.Why(), substr)
	}
}
