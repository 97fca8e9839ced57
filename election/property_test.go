package election

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/zrs-go/zrs/storage"
)

// oracleWinner is an independent, deliberately naive statement of the
// election rule: eligible nodes sorted by (tid desc, priority desc, name
// asc), the first one wins.
func oracleWinner(v View, maxLag time.Duration) string {
	useSync := v.SyncMode && v.Sync != nil && v.Sync.Epoch == v.Epoch && len(v.Sync.Members) > 0
	var top storage.Tid
	for _, n := range v.Nodes {
		if !n.NoFailover && n.LastTid > top {
			top = n.LastTid
		}
	}
	var elig []NodeInfo
	for name, n := range v.Nodes {
		n.Name = name
		if n.NoFailover || !n.Settled {
			continue
		}
		if useSync {
			if name == v.Sync.Primary || slices.Contains(v.Sync.Members, name) {
				elig = append(elig, n)
			}
			continue
		}
		if n.LastTid != top {
			continue
		}
		if v.LastSeenPrimaryTid > n.LastTid {
			if maxLag == 0 || v.LastSeenPrimaryTid.Time().Sub(n.LastTid.Time()) > maxLag {
				continue
			}
		}
		elig = append(elig, n)
	}
	if len(elig) == 0 {
		return ""
	}
	slices.SortFunc(elig, func(a, b NodeInfo) int {
		switch {
		case a.LastTid != b.LastTid:
			if a.LastTid > b.LastTid {
				return -1
			}
			return 1
		case a.Priority != b.Priority:
			return b.Priority - a.Priority
		case a.Name < b.Name:
			return -1
		}
		return 1
	})
	return elig[0].Name
}

// randomCluster builds a shared view of a cluster without a primary, plus
// per-node configs, connectivity and last-seen tids.
type randomCluster struct {
	shared    View
	names     []string
	cfgs      map[string]Config
	connected map[string]bool
	lastSeen  map[string]storage.Tid
	upstream  map[string]string
}

func genCluster(r *rand.Rand) randomCluster {
	n := 1 + r.IntN(6)
	c := randomCluster{cfgs: map[string]Config{}, connected: map[string]bool{},
		lastSeen: map[string]storage.Tid{}, upstream: map[string]string{}}
	epoch := uint64(r.IntN(4))
	c.shared = View{Nodes: map[string]NodeInfo{}, Epoch: epoch, EpochVersion: int32(epoch) + int32(r.IntN(2)),
		SyncMode: r.IntN(2) == 0, Now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	tids := []storage.Tid{0, tid(1), tid(1) + 1, tid(2), tid(3)}
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		c.names = append(c.names, name)
		cfg := Default()
		cfg.SettleDelay = time.Duration(r.IntN(3)) * 250 * time.Millisecond
		cfg.MaxLagOnFailover = []time.Duration{0, time.Second, time.Hour}[r.IntN(3)]
		cfg.Priority = r.IntN(3) - 1
		cfg.NoFailover = r.IntN(6) == 0
		c.cfgs[name] = cfg
		c.connected[name] = r.IntN(5) != 0
		c.lastSeen[name] = tids[r.IntN(len(tids))]
		if r.IntN(4) == 0 {
			c.upstream[name] = fmt.Sprintf("n%d", r.IntN(n))
		}
		if r.IntN(8) == 0 {
			continue // not registered (yet)
		}
		info := NodeInfo{Name: name, ReplAddr: name + ":5000", Role: Role(r.IntN(4)), LastTid: tids[r.IntN(len(tids))],
			Priority: cfg.Priority, NoFailover: cfg.NoFailover, Settled: r.IntN(5) != 0}
		if r.IntN(10) == 0 {
			info.Priority = r.IntN(3) - 1 // published and configured disagree
			info.NoFailover = !info.NoFailover
		}
		c.shared.Nodes[name] = info
	}
	if r.IntN(3) != 0 {
		s := &SyncInfo{Epoch: epoch - uint64(r.IntN(2))*min(epoch, 1), Primary: fmt.Sprintf("n%d", r.IntN(n+1))}
		for _, name := range c.names {
			if r.IntN(3) == 0 {
				s.Members = append(s.Members, name)
			}
		}
		c.shared.Sync = s
	}
	return c
}

func (c randomCluster) viewOf(name string) View {
	v := c.shared
	v.Self = name
	v.Connected = c.connected[name]
	v.LastSeenPrimaryTid = c.lastSeen[name]
	v.ConfiguredUpstream = c.upstream[name]
	return v
}

// TestPropertyAtMostOneRunner: on random views of a cluster without a
// primary, every node decides on the same published data (its own
// LastSeenPrimaryTid, settings and connectivity may differ). At most one
// node runs, it is the rule's winner, a disconnected node never runs, and
// the winner does run when it is connected and allowed to.
func TestPropertyAtMostOneRunner(t *testing.T) {
	const trials = 20000
	ran := 0
	for seed := uint64(0); seed < trials; seed++ {
		r := rand.New(rand.NewPCG(seed, 0x5eed))
		c := genCluster(r)
		var runners []string
		for _, name := range c.names {
			e, err := New(c.cfgs[name])
			if err != nil {
				t.Fatal(err)
			}
			v := c.viewOf(name)
			first := e.Step(v) // the primary is first seen missing
			v.Now = v.Now.Add(c.cfgs[name].SettleDelay)
			second := e.Step(v)
			for i, a := range append(first, second...) {
				if a.Why() == "" {
					t.Fatalf("seed %d: %s action %d %T has no reason", seed, name, i, a)
				}
				switch a := a.(type) {
				case RunForPrimary:
					if i < len(first) && c.cfgs[name].SettleDelay > 0 {
						t.Fatalf("seed %d: %s ran before the settle delay", seed, name)
					}
					if !v.Connected {
						t.Fatalf("seed %d: disconnected %s ran", seed, name)
					}
					if a.Epoch != v.Epoch || a.NewEpoch != v.Epoch+1 || a.EpochVersion != v.EpochVersion {
						t.Fatalf("seed %d: %s: bad RunForPrimary %+v for epoch %d version %d", seed, name, a, v.Epoch, v.EpochVersion)
					}
					if i >= len(first) {
						runners = append(runners, name)
					}
				case Promote, Unfence, Follow, Demote, Fence:
					t.Fatalf("seed %d: %s: unexpected %v for a fresh candidate without primary", seed, name, a)
				}
			}
		}
		if len(runners) > 1 {
			t.Fatalf("seed %d: several runners %v on one view", seed, runners)
		}
		// Oracle: with the winner's own settings and knowledge.
		var want string
		for _, name := range c.names {
			if w := oracleWinner(c.viewOf(name), c.cfgs[name].MaxLagOnFailover); w == name {
				if c.connected[name] && !c.cfgs[name].NoFailover {
					want = name
				}
			}
		}
		if len(runners) == 1 {
			ran++
			got := runners[0]
			if got != want {
				t.Fatalf("seed %d: %s ran, oracle says %q", seed, got, want)
			}
		} else if want != "" {
			t.Fatalf("seed %d: nobody ran, oracle says %q", seed, want)
		}
	}
	// Guard against a vacuous generator: a fair share of views elect.
	if ran < trials/5 || ran > trials*9/10 {
		t.Fatalf("%d of %d random views elected someone", ran, trials)
	}
	t.Logf("%d of %d random views elected someone", ran, trials)
}

// TestPropertyViewsWithPrimary: on random views that show a primary, a node
// never runs, promotes or unfences unless connected and shown its own
// session's znode, and every node agrees on whom to follow when it has no
// configured upstream.
func TestPropertyViewsWithPrimary(t *testing.T) {
	for seed := uint64(0); seed < 20000; seed++ {
		r := rand.New(rand.NewPCG(seed, 0xfeed))
		c := genCluster(r)
		pname := c.names[r.IntN(len(c.names))]
		owner := pname
		if r.IntN(4) == 0 {
			owner = "" // left over from an earlier session
		}
		p := PrimaryInfo{Name: pname, ReplAddr: pname + ":5000", Epoch: c.shared.Epoch}
		if r.IntN(10) == 0 {
			p.Epoch++ // torn view
		}
		for _, name := range c.names {
			e, _ := New(c.cfgs[name])
			// Some nodes have been primary of this epoch already.
			if name == pname && r.IntN(2) == 0 {
				pv := c.viewOf(name)
				pv.Connected = true
				pv.Primary = &PrimaryInfo{Name: name, ReplAddr: p.ReplAddr, Epoch: c.shared.Epoch, Owned: true}
				if got := short(e.Step(pv)); !slices.Equal(got, []string{fmt.Sprintf("promote %d", c.shared.Epoch)}) {
					t.Fatalf("seed %d: %s: %v", seed, name, got)
				}
			}
			v := c.viewOf(name)
			pp := p
			pp.Owned = name == owner
			v.Primary = &pp
			for _, a := range e.Step(v) {
				switch a := a.(type) {
				case RunForPrimary:
					t.Fatalf("seed %d: %s ran while a primary exists", seed, name)
				case Promote, Unfence:
					if !v.Connected || !pp.Owned || pp.Name != name || pp.Epoch != v.Epoch {
						t.Fatalf("seed %d: %s: %v on view %+v", seed, name, a, v)
					}
				case Follow:
					if !v.Connected || name == pname {
						t.Fatalf("seed %d: %s: %v", seed, name, a)
					}
					if v.ConfiguredUpstream == "" && a.Upstream != pname {
						t.Fatalf("seed %d: %s follows %s, not primary %s", seed, name, a.Upstream, pname)
					}
					if a.Upstream == name {
						t.Fatalf("seed %d: %s follows itself", seed, name)
					}
				}
			}
			if e.Role() == Primary && (!v.Connected || !pp.Owned || pp.Name != name || pp.Epoch != v.Epoch) {
				t.Fatalf("seed %d: %s is primary on view %+v / %+v", seed, name, v, pp)
			}
		}
	}
}

// TestPropertyRandomHistories drives the simulated cluster through random
// crashes, restarts, partitions, session expiries, commits and steps, and
// checks after every event that at most one live node is an unfenced
// primary, and that it holds the primary znode with its current session at
// its epoch. At the end every partition heals and the cluster must converge
// to one primary followed by everybody else.
func TestPropertyRandomHistories(t *testing.T) {
	const histories, events = 2000, 150
	failovers := 0
	for seed := uint64(0); seed < histories; seed++ {
		r := rand.New(rand.NewPCG(seed, 0xc0ffee))
		n := 2 + r.IntN(4)
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("n%d", i)
		}
		s := newSim(t)
		for _, name := range names {
			cfg := Default()
			cfg.Priority = r.IntN(2)
			s.add(name, cfg)
			if r.IntN(5) == 0 {
				s.node(name).upstream = names[r.IntN(n)]
			}
		}
		var log []string
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d: %s\nhistory:\n  %s", seed, fmt.Sprintf(format, args...), joinLines(log))
		}
		var clock float64
		for range events {
			name := names[r.IntN(n)]
			nd := s.node(name)
			var ev string
			switch k := r.IntN(20); {
			case k < 8:
				ev = fmt.Sprintf("step %s -> %v", name, short(s.step(name)))
			case k < 11:
				d := time.Duration(r.IntN(4)) * 200 * time.Millisecond
				s.advance(d)
				ev = fmt.Sprintf("advance %v", d)
			case k < 13:
				if s.primary != nil {
					clock++
					var to []string
					for _, other := range names {
						if s.node(other).registered() && r.IntN(2) == 0 {
							to = append(to, other)
						}
					}
					s.commit(tid(clock), to...)
					ev = fmt.Sprintf("commit %v to %v", clock, to)
				}
			case k < 15:
				if nd.alive && nd.connected {
					s.partition(name)
					ev = fmt.Sprintf("partition %s; step -> %v", name, short(s.step(name)))
				}
			case k < 16:
				if nd.alive && !nd.connected {
					s.expire(name)
					ev = "expire " + name
				}
			case k < 18:
				if nd.alive && !nd.connected {
					s.heal(name)
					ev = fmt.Sprintf("heal %s; step -> %v", name, short(s.step(name)))
				}
			case k < 19:
				if nd.alive {
					s.kill(name)
					ev = "kill " + name
				}
			default:
				if !nd.alive {
					s.restart(name)
					ev = "restart " + name
				}
			}
			if ev != "" {
				log = append(log, ev)
			}
			checkOnePrimary(s, names, fail)
		}
		// Heal everything and let the cluster converge.
		for _, name := range names {
			if nd := s.node(name); !nd.alive {
				s.restart(name)
			} else if !nd.connected {
				s.heal(name)
			}
		}
		for range 4 {
			for _, name := range names {
				log = append(log, fmt.Sprintf("converge: step %s -> %v (%s)", name, short(s.step(name)), s.node(name).e.Why()))
				checkOnePrimary(s, names, fail)
			}
			s.advance(DefaultSettleDelay)
		}
		var primaries []string
		for _, name := range names {
			switch s.node(name).e.Role() {
			case Primary:
				primaries = append(primaries, name)
			case Secondary:
			default:
				fail("%s is %s after convergence", name, s.node(name).e.Role())
			}
		}
		if len(primaries) != 1 {
			fail("primaries after convergence: %v", primaries)
		}
		failovers += int(s.epoch)
	}
	if failovers < histories*3/2 {
		t.Fatalf("only %d elections in %d histories", failovers, histories)
	}
	t.Logf("%d elections in %d histories", failovers, histories)
}

func checkOnePrimary(s *sim, names []string, fail func(string, ...any)) {
	var primaries []string
	for _, name := range names {
		nd := s.node(name)
		if !nd.alive || nd.e.Role() != Primary {
			continue
		}
		primaries = append(primaries, name)
		if !nd.connected || s.primary == nil || s.primary.info.Name != name ||
			s.primary.session != nd.session || s.primary.info.Epoch != nd.e.Epoch() {
			fail("%s is primary of epoch %d without holding the primary znode", name, nd.e.Epoch())
		}
	}
	if len(primaries) > 1 {
		fail("several primaries: %v", primaries)
	}
}

func joinLines(lines []string) string {
	if len(lines) > 60 {
		lines = append([]string{"..."}, lines[len(lines)-60:]...)
	}
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}
