package election

import (
	"testing"
	"time"
)

// Scenario tests read as scripts: events happen to the simulated cluster,
// nodes are stepped, and each step's actions are checked.

func TestScenarioStartsAsCandidate(t *testing.T) {
	s := newSim(t, "a", "b", "c")
	for _, name := range s.sorted() {
		if r := s.node(name).e.Role(); r != Candidate {
			t.Fatalf("%s starts as %s", name, r)
		}
	}
	// Nobody runs before the settle delay, even in an empty cluster.
	s.wantNothing("a", "b", "c")
	s.advance(DefaultSettleDelay - time.Millisecond)
	s.wantNothing("a", "b", "c")
	wantWhy(t, s.node("a").e, "settling")
	s.advance(time.Millisecond)
	// Equal tids and priorities: the lowest name runs, the others do not.
	s.wantNothing("b", "c")
	s.want("a", "run 1")
	s.want("a", "promote 1")
	s.want("b", "follow a@1")
	s.want("c", "follow a@1")
	// Steady state: nothing more to do.
	s.wantNothing("a", "b", "c")
}

func TestScenarioPrimaryDiesFreshestWins(t *testing.T) {
	s := newSim(t, "a", "b", "c")
	s.electFirst("a")
	s.commit(tid(1), "b", "c")
	s.commit(tid(2), "c") // b lags one transaction behind c

	s.kill("a")
	s.wantNothing("b", "c") // the settle delay starts now
	s.advance(300 * time.Millisecond)
	s.wantNothing("b", "c")
	s.advance(200 * time.Millisecond)
	s.want("b") // b is behind c
	wantWhy(t, s.node("b").e, "c is the best")
	s.want("c", "run 2")
	s.want("c", "promote 2")
	s.want("b", "follow c@2")
	if r := s.node("c").e.Role(); r != Primary {
		t.Fatalf("c is %s", r)
	}
}

func TestScenarioEqualFreshnessPriorityWins(t *testing.T) {
	s := newSim(t)
	s.add("a", Default())
	s.add("b", Default())
	hi := Default()
	hi.Priority = 10
	s.add("c", hi)
	// c has the highest priority even though a has the lowest name.
	s.advance(0)
	s.wantNothing("a", "b", "c")
	s.advance(DefaultSettleDelay)
	s.wantNothing("a", "b")
	s.want("c", "run 1")
	s.want("c", "promote 1")
	s.commit(tid(5), "a", "b")

	// c dies; a and b are equally fresh and equally prioritized: lower name.
	s.kill("c")
	s.wantNothing("a", "b")
	s.advance(DefaultSettleDelay)
	s.wantNothing("b")
	s.want("a", "run 2")
}

func TestScenarioNoFailoverNeverRuns(t *testing.T) {
	s := newSim(t)
	nf := Default()
	nf.NoFailover = true
	nf.Priority = 100
	s.add("a", nf) // best name and priority, but no_failover
	s.add("b", Default())
	s.add("c", Default())
	s.wantNothing("a", "b", "c")
	s.advance(DefaultSettleDelay)
	s.want("a")
	wantWhy(t, s.node("a").e, "no_failover")
	s.want("b", "run 1")
	s.want("b", "promote 1")
	s.want("a", "follow b@1") // it still replicates
	s.want("c", "follow b@1")

	// The no_failover node is the freshest when b dies: it still never
	// runs, and it does not block c (it will rewind when it follows c).
	s.commit(tid(1), "a", "c")
	s.commit(tid(2), "a")
	s.kill("b")
	s.advance(0)
	s.wantNothing("a", "c")
	s.advance(time.Hour)
	s.want("a")
	s.want("c", "run 2")

	// A cluster of no_failover nodes never elects anyone.
	s2 := newSim(t)
	s2.add("x", nf)
	s2.add("y", nf)
	s2.wantNothing("x", "y")
	s2.advance(time.Hour)
	s2.wantNothing("x", "y")
}

func TestScenarioSyncModePicksSyncMember(t *testing.T) {
	s := newSim(t, "a", "b", "c")
	s.syncMode = true
	s.electFirst("a")
	s.sync = &SyncInfo{Epoch: 1, Primary: "a", Members: []string{"b"}}
	// c is ahead of b (it received a commit that was not acknowledged to
	// any client because b had not acknowledged it) but only b is a member.
	s.commit(tid(1), "b", "c")
	s.commit(tid(2), "c")

	s.kill("a")
	s.advance(0)
	s.wantNothing("b", "c")
	s.advance(DefaultSettleDelay)
	s.want("c")
	wantWhy(t, s.node("c").e, "neither a sync member")
	s.want("b", "run 2")
	s.want("b", "promote 2")
	s.want("c", "follow b@2") // c rewinds through the replication handshake

	// A sync znode from an older epoch is not trusted: b (primary of epoch
	// 2) died before writing one, so the freshest-node rule applies.
	s.commit(tid(3), "c")
	s.kill("b")
	s.advance(0)
	s.want("c")
	s.advance(DefaultSettleDelay)
	s.want("c", "run 3")
}

func TestScenarioSyncDegradedFallsBackToFreshest(t *testing.T) {
	s := newSim(t, "a", "b", "c")
	s.syncMode = true
	s.electFirst("a")
	s.sync = &SyncInfo{Epoch: 1, Primary: "a"} // degraded: no members
	s.commit(tid(1), "b", "c")
	s.commit(tid(2), "c")
	s.kill("a")
	s.advance(0)
	s.wantNothing("b", "c")
	s.advance(DefaultSettleDelay)
	s.want("b")
	wantWhy(t, s.node("b").e, "degraded")
	s.want("c", "run 2")
}

func TestScenarioPartitionedPrimaryFencesThenDemotes(t *testing.T) {
	s := newSim(t, "a", "b", "c")
	s.electFirst("a")
	s.commit(tid(1), "b", "c")

	// a loses ZooKeeper: it stops accepting commits at once.
	s.partition("a")
	s.want("a", "fence")
	if r := s.node("a").e.Role(); r != Fenced {
		t.Fatalf("a is %s", r)
	}
	s.want("a") // fencing again is a no-op
	// Its session expires at the server; b wins the election.
	s.expire("a")
	s.advance(0)
	s.wantNothing("b", "c")
	s.advance(DefaultSettleDelay)
	s.want("b", "run 2")
	s.want("b", "promote 2")
	s.want("c", "follow b@2")
	// a is still partitioned: still fenced, never unfenced.
	s.advance(time.Minute)
	s.want("a")
	// a reconnects with a new session and sees b as primary: it demotes
	// and follows b (its replication handshake handles divergence).
	s.heal("a")
	s.want("a", "demote", "follow b@2")
	if r := s.node("a").e.Role(); r != Secondary {
		t.Fatalf("a is %s", r)
	}
}

func TestScenarioBriefPartitionUnfences(t *testing.T) {
	s := newSim(t, "a", "b")
	s.electFirst("a")
	s.partition("a")
	s.want("a", "fence")
	// Reconnected within the session timeout: same session, the primary
	// znode is still a's at epoch 1.
	s.heal("a")
	s.want("a", "unfence 1")
	s.want("a")
	if r := s.node("a").e.Role(); r != Primary {
		t.Fatalf("a is %s", r)
	}
}

func TestScenarioExpiredPrimaryWithoutSuccessorDemotes(t *testing.T) {
	s := newSim(t, "a", "b")
	s.electFirst("a")
	s.commit(tid(1), "b")
	s.commit(tid(2)) // only a has tid 2
	s.partition("a")
	s.want("a", "fence")
	s.expire("a")
	s.heal("a") // new session, the primary znode is gone, b has not run yet
	s.want("a", "demote")
	s.want("b")
	s.advance(DefaultSettleDelay)
	// a is the freshest: it wins again rather than losing tid 2.
	s.want("b")
	s.want("a", "run 2")
	s.want("a", "promote 2")
	s.want("b", "follow a@2")
}

func TestScenarioLeftoverPrimaryZnodeFromEarlierSession(t *testing.T) {
	s := newSim(t, "a", "b")
	s.electFirst("a")
	// a crashes and restarts before its old session expires: the primary
	// znode still names a but is owned by the dead session.
	old := s.node("a").session
	s.restart("a")
	s.primary = &simPrimary{info: PrimaryInfo{Name: "a", ReplAddr: "a:5000", Epoch: 1}, session: old}
	s.want("a") // never promotes on someone else's (its own old) znode
	wantWhy(t, s.node("a").e, "earlier session")
	s.advance(time.Hour)
	s.want("a")
	// The old session expires; the normal election follows.
	s.primary = nil
	s.advance(0)
	s.wantNothing("a", "b")
	s.advance(DefaultSettleDelay)
	s.want("a", "run 2")
	s.want("a", "promote 2")
	s.want("b", "follow a@2")
}

func TestScenarioPrimaryZnodeOfOldSessionDemotesPrimary(t *testing.T) {
	s := newSim(t, "a", "b")
	s.electFirst("a")
	// a's session expired and a reconnected with a new one, but the view
	// still shows the old znode naming a: it is not ours any more.
	s.partition("a")
	s.want("a", "fence")
	oldSession := s.node("a").session
	s.heal("a")
	s.node("a").session = oldSession + 100 // a new session id
	s.want("a", "demote")
}

func TestScenarioCascadingSecondaryKeepsUpstream(t *testing.T) {
	s := newSim(t, "a", "b", "c", "d")
	s.node("d").upstream = "c" // d cascades from c
	s.electFirst("a")          // d follows c at once: c is alive
	s.want("d")
	s.commit(tid(1), "b", "c", "d")
	s.commit(tid(2), "b", "c")

	// a dies; b wins (fresher than d, lower name than c).
	s.kill("a")
	s.advance(0)
	s.wantNothing("b", "c", "d")
	s.advance(DefaultSettleDelay)
	s.want("b", "run 2")
	s.want("b", "promote 2")
	// d keeps its upstream c, re-handshaking under the new epoch, even
	// before c re-points to b.
	s.want("d", "follow c@2")
	s.want("c", "follow b@2")
	s.want("d")

	// c dies: d falls back to the primary.
	s.kill("c")
	s.want("d", "follow b@2")
	wantWhy(t, s.node("d").e, "not alive")
	// c comes back: d returns to it.
	s.restart("c")
	s.want("c", "follow b@2")
	s.want("d", "follow c@2")
}

func TestScenarioCascadingUpstreamWasTheFailedPrimary(t *testing.T) {
	s := newSim(t, "a", "b", "c")
	s.node("c").upstream = "a" // c cascades from a, the first primary
	s.electFirst("a")
	s.want("c") // a is the primary: c already follows it
	s.commit(tid(1), "b", "c")

	// a is partitioned away and replaced by b.
	s.partition("a")
	s.want("a", "fence")
	s.expire("a")
	s.advance(0)
	s.wantNothing("b", "c")
	s.advance(DefaultSettleDelay)
	s.want("b", "run 2")
	s.want("b", "promote 2")
	s.want("c", "follow b@2")
	// a reconnects: until it has rejoined under epoch 2 it is the failed
	// primary and c does not go back to it.
	s.heal("a")
	s.step("a") // demote, follow b
	s.want("c", "follow a@2")
	// Variation: a comes back as a candidate of an older epoch (restarted
	// before anyone followed it); c does not follow it.
	s2 := newSim(t, "a", "b", "c")
	s2.node("c").upstream = "a"
	s2.electFirst("a")
	s2.kill("a")
	s2.advance(0)
	s2.wantNothing("b", "c")
	s2.advance(DefaultSettleDelay)
	s2.want("b", "run 2")
	s2.want("b", "promote 2")
	s2.restart("a")
	s2.node("a").info.Epoch = 1 // what it published last time
	s2.want("c", "follow b@2")
	wantWhy(t, s2.node("c").e, "failed primary")
}

func TestScenarioStaleEpochViewsAreIgnored(t *testing.T) {
	s := newSim(t, "a", "b", "c")
	s.electFirst("a")
	stale := s.view("b") // epoch 1, primary a
	s.kill("a")
	s.advance(0)
	s.wantNothing("b", "c")
	s.advance(DefaultSettleDelay)
	s.want("b", "run 2")
	s.want("b", "promote 2")
	s.want("c", "follow b@2")
	// A late view of epoch 1 reaches b and c: neither acts on it.
	if acts := s.stepView("b", stale); len(acts) != 0 {
		t.Fatalf("b acted on a stale view: %v", acts)
	}
	wantWhy(t, s.node("b").e, "stale view")
	stale.Self = "c"
	if acts := s.stepView("c", stale); len(acts) != 0 {
		t.Fatalf("c acted on a stale view: %v", acts)
	}
	if got := s.node("c").e.Upstream(); got != "b" {
		t.Fatalf("c follows %q after a stale view", got)
	}
	// A stale view without a primary does not start an election either.
	s.kill("b")
	old := s.view("c")
	old.Epoch, old.EpochVersion = 1, 1
	s.advance(time.Hour)
	old.Now = s.now
	if acts := s.stepView("c", old); len(acts) != 0 {
		t.Fatalf("c ran on a stale view: %v", acts)
	}
}

func TestScenarioTornViewIsIgnoredButPrimaryFences(t *testing.T) {
	s := newSim(t, "a", "b")
	s.electFirst("a")
	// The epoch znode was read before the primary znode changed.
	v := s.view("b")
	v.Primary = &PrimaryInfo{Name: "c", ReplAddr: "c:5000", Epoch: 2}
	if acts := s.stepView("b", v); len(acts) != 0 {
		t.Fatalf("b acted on a torn view: %v", acts)
	}
	wantWhy(t, s.node("b").e, "torn view")
	// The primary cannot confirm itself from a torn view: it fails closed.
	v = s.view("a")
	v.Primary.Epoch = 2
	if got := short(s.stepView("a", v)); len(got) != 1 || got[0] != "fence" {
		t.Fatalf("primary on a torn view: %v", got)
	}
	// A consistent view showing itself (this epoch 2 was seen, so epoch 1
	// views are now stale and it stays fenced).
	s.want("a")
	wantWhy(t, s.node("a").e, "stale view")
}

func TestScenarioSettleDelayAndDeadline(t *testing.T) {
	s := newSim(t, "a", "b")
	s.electFirst("a")
	s.kill("a")
	start := s.now
	s.want("b")
	d, ok := s.node("b").e.Deadline()
	if !ok || !d.Equal(start.Add(DefaultSettleDelay)) {
		t.Fatalf("Deadline() = %v, %v; want %v", d, ok, start.Add(DefaultSettleDelay))
	}
	// A disconnection restarts the settle delay: b's view of peers was
	// stale while it lasted.
	s.advance(400 * time.Millisecond)
	s.partition("b")
	s.want("b")
	if _, ok := s.node("b").e.Deadline(); ok {
		t.Fatalf("deadline while disconnected")
	}
	s.heal("b")
	s.want("b")
	s.advance(400 * time.Millisecond)
	s.want("b")
	s.advance(100 * time.Millisecond)
	s.want("b", "run 2")
	if _, ok := s.node("b").e.Deadline(); ok {
		t.Fatalf("deadline after running")
	}
}

func TestScenarioUnsettledNodes(t *testing.T) {
	s := newSim(t, "a", "b", "c")
	s.electFirst("a")
	s.commit(tid(1), "b", "c")
	s.kill("a")
	s.node("b").info.Settled = false // b is still applying
	s.advance(0)
	s.wantNothing("b", "c")
	s.advance(DefaultSettleDelay)
	s.want("b")
	wantWhy(t, s.node("b").e, "applied what it received")
	// c is as fresh as b's published position and settled: it runs.
	s.want("c", "run 2")

	// An unsettled node that is already fresher blocks the less fresh one.
	s2 := newSim(t, "a", "b", "c")
	s2.electFirst("a")
	s2.commit(tid(1), "b", "c")
	s2.commit(tid(2), "b")
	s2.node("b").info.Settled = false
	s2.kill("a")
	s2.advance(0)
	s2.wantNothing("b", "c")
	s2.advance(DefaultSettleDelay)
	s2.wantNothing("b", "c")
	s2.node("b").info.Settled = true
	s2.want("c")
	s2.want("b", "run 2")
}

func TestScenarioMaxLagOnFailover(t *testing.T) {
	// b and c applied tid(9); b had also heard (say from a keep-alive) that
	// the old primary reached tid(10), which neither of them holds.
	run := func(maxLag time.Duration) *sim {
		s := newSim(t)
		cfg := Default()
		cfg.MaxLagOnFailover = maxLag
		s.add("a", cfg)
		s.add("b", cfg)
		s.add("c", cfg)
		s.electFirst("a")
		s.commit(tid(9), "b", "c")
		s.node("b").lastSeen = tid(10) // b heard of tid(10) but never applied it
		s.kill("a")
		s.advance(0)
		s.wantNothing("b", "c")
		s.advance(DefaultSettleDelay)
		return s
	}
	s := run(0)
	s.want("b") // with max lag 0, b refuses to lose what it saw
	wantWhy(t, s.node("b").e, "behind the old primary")
	s.want("c") // c knows nothing newer, but b outranks it: nobody runs
	s = run(2 * time.Second)
	s.want("b", "run 2")
}

func TestScenarioDisconnectedNodeNeverRuns(t *testing.T) {
	s := newSim(t, "a", "b")
	s.partition("a")
	s.advance(time.Hour)
	s.want("a")
	s.want("a")
	s.want("b") // b settles from now (a is still registered and outranks b)
	s.advance(DefaultSettleDelay)
	s.want("b")
	wantWhy(t, s.node("b").e, "a is the best")
	s.heal("a")
	s.want("a")
	s.advance(DefaultSettleDelay)
	s.want("a", "run 1")
}

func TestScenarioNeverTwoRunnersOnConsistentViews(t *testing.T) {
	s := newSim(t, "a", "b", "c", "d", "e")
	s.electFirst("a")
	s.commit(tid(1), "b", "c", "d", "e")
	s.commit(tid(2), "c", "e")
	s.kill("a")
	s.advance(0)
	for _, name := range s.sorted()[1:] {
		s.want(name)
	}
	s.advance(DefaultSettleDelay)
	// Everyone decides on the same snapshot before anyone acts.
	views := map[string]View{}
	for _, name := range s.sorted()[1:] {
		views[name] = s.view(name)
	}
	var runners []string
	for _, name := range s.sorted()[1:] {
		for _, a := range s.node(name).e.Step(views[name]) {
			if _, ok := a.(RunForPrimary); ok {
				runners = append(runners, name)
			}
		}
	}
	if len(runners) != 1 || runners[0] != "c" {
		t.Fatalf("runners = %v, want [c]", runners)
	}
}

func TestScenarioFailedMultiIsRetried(t *testing.T) {
	s := newSim(t, "a", "b")
	s.electFirst("a")
	s.kill("a")
	s.want("b")
	s.advance(DefaultSettleDelay)
	// The Multi fails on a connection loss before it commits.
	v := s.view("b")
	acts := s.node("b").e.Step(v)
	if got := short(acts); len(got) != 1 || got[0] != "run 2" {
		t.Fatalf("got %v", got)
	}
	s.want("b", "run 2") // the next view still has no primary: try again
	s.want("b", "promote 2")
}

func TestScenarioEdgeCases(t *testing.T) {
	// A sync znode newer than the epoch znode: torn view, ignored.
	s := newSim(t, "a", "b")
	s.syncMode = true
	s.sync = &SyncInfo{Epoch: 7, Primary: "a", Members: []string{"b"}}
	s.advance(time.Hour)
	s.want("b")
	wantWhy(t, s.node("b").e, "sync znode is at epoch 7")

	// A primary without a replication address cannot be followed; a
	// cascading upstream without one is skipped; so is one that replicates
	// from this node.
	s = newSim(t, "a", "b", "c")
	s.node("a").info.ReplAddr = ""
	s.electFirst2("a")
	s.want("b")
	wantWhy(t, s.node("b").e, "publishes no replication address")
	s.node("a").info.ReplAddr = "a:5000"
	s.primary.info.ReplAddr = "a:5000"
	s.node("b").upstream = "c"
	s.node("c").info.ReplAddr = ""
	s.want("b", "follow a@1")
	wantWhy(t, s.node("b").e, "serves no replication")
	s.node("c").info.ReplAddr = "c:5000"
	s.node("c").upstream = "b"
	s.want("c", "follow b@1")
	s.want("b") // c replicates from b: no cycle
	wantWhy(t, s.node("b").e, "replicates from this node")

	// An unregistered node does not run.
	s = newSim(t, "a")
	s.node("a").session = 0
	s.node("a").connected = true
	v := s.view("a")
	v.Connected = true
	e := s.node("a").e
	e.Step(v)
	v.Now = v.Now.Add(time.Hour)
	if acts := e.Step(v); len(acts) != 0 {
		t.Fatalf("unregistered node acted: %v", acts)
	}
	wantWhy(t, e, "not registered")
}

// electFirst2 is electFirst for clusters whose primary may not be
// followable: only the winner's steps are checked.
func (s *sim) electFirst2(winner string) {
	s.t.Helper()
	for _, name := range s.sorted() {
		s.want(name)
	}
	s.advance(DefaultSettleDelay)
	s.want(winner, "run 1")
	s.want(winner, "promote 1")
}

func TestScenarioSwitchoverRunsOnlyTheTargetAtOnce(t *testing.T) {
	s := newSim(t, "a", "b", "c")
	s.electFirst("a")
	s.commit(tid(1), "b", "c")
	// The operator asks a to hand over to c; a waited for c to hold
	// everything, then resigns.
	s.switchover = &SwitchoverInfo{From: "a", To: "c", Epoch: s.epoch}
	s.resign("a")
	s.want("a", "demote")
	wantWhy(t, s.node("a").e, "switchover from a to c")
	s.wantNothing("b") // b is as fresh and ranks higher by name, but is not the target
	wantWhy(t, s.node("b").e, "switchover")
	s.want("c", "run 2") // no settle delay: the target's data is complete
	s.want("c", "promote 2")
	s.want("a", "follow c@2")
	s.want("b", "follow c@2")
	// The request is stale now: a later failure elects by the usual rules.
	s.kill("c")
	s.wantNothing("a", "b")
	s.advance(DefaultSettleDelay)
	s.want("a", "run 3")
}

func TestScenarioSwitchoverToDeadTargetFallsBackToRules(t *testing.T) {
	s := newSim(t, "a", "b", "c")
	s.electFirst("a")
	s.switchover = &SwitchoverInfo{From: "a", To: "c", Epoch: s.epoch}
	s.kill("c")
	s.kill("a")
	s.wantNothing("b")
	s.advance(DefaultSettleDelay)
	s.want("b", "run 2")
}

func TestScenarioPausedClusterDoesNotFailOver(t *testing.T) {
	s := newSim(t, "a", "b", "c")
	s.electFirst("a")
	s.paused = true
	s.kill("a")
	s.wantNothing("b", "c")
	s.advance(10 * DefaultSettleDelay)
	s.wantNothing("b", "c")
	wantWhy(t, s.node("b").e, "paused")
	// Resuming lets the election happen; the settle delay has long passed.
	s.paused = false
	s.want("b", "run 2")
	s.want("b", "promote 2")
	s.want("c", "follow b@2")
}
