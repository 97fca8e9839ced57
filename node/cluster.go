package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/election"
	"github.com/zrs-go/zrs/registry"
)

// Version is the software version published in nodes/<name>.
const Version = "zrs-go/0.1"

// recordEvery is how often the node's record is refreshed with its last
// tid; the registry writes a moving last tid at most every 100 ms anyway.
const recordEvery = 50 * time.Millisecond

// cluster runs a node in ZooKeeper mode: it keeps the node registered,
// builds election views from ZooKeeper watches and local state, steps the
// pure Elector with them, and carries out its actions on the node's ZEO
// service, feed and replica. All I/O of the election lives here.
type cluster struct {
	n   *Node
	cfg *Config
	log hclog.Logger
	el  *election.Elector

	poke chan struct{} // buffered 1: something in the view changed

	// maxEpoch is the highest epoch seen anywhere (replica handshakes
	// refuse upstreams below it); epoch is the epoch served as primary
	// or followed as a secondary.
	maxEpoch atomic.Uint64
	epoch    atomic.Uint64
	primary  atomic.Bool // role is primary (fenced or not): fence on doubt

	// lease is when the last ZooKeeper round trip that confirmed this
	// node's primary znode was sent; stopLease ends its renewal.
	lease     atomic.Pointer[time.Time]
	stopLease context.CancelFunc

	mu       sync.Mutex
	sess     *registry.Session
	nodes    []registry.NodeRecord
	haveNode bool
	pview    registry.PrimaryView
	havePrim bool
	ep       registry.Epoch
	sync     registry.SyncRecord
	control  registry.Control

	term registry.Term // the term won, while primary or fenced (under mu)

	// role and upstream as setRole last set them, for snapshot (under mu).
	role     election.Role
	upstream string

	// Owned by the run loop.
	won         registry.Term // the last RunForPrimary won, until promoted
	verifyAgain bool          // an Unfence still has to verify the term
	rec         registry.NodeRecord
}

func newCluster(n *Node) (*cluster, error) {
	el, err := election.New(n.cfg.ElectionConfig())
	if err != nil {
		return nil, err
	}
	c := &cluster{n: n, cfg: n.cfg, log: n.log.Named("cluster"), el: el, poke: make(chan struct{}, 1)}
	return c, nil
}

func (c *cluster) wake() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// noteEpoch raises the highest epoch seen.
func (c *cluster) noteEpoch(e uint64) {
	for {
		old := c.maxEpoch.Load()
		if e <= old || c.maxEpoch.CompareAndSwap(old, e) {
			return
		}
	}
}

// run connects to ZooKeeper (waiting while it is unavailable), registers
// the node and drives the election until ctx is done.
func (c *cluster) run(ctx context.Context) error {
	rc := c.cfg.RegistryConfig()
	c.log.Info("connecting to ZooKeeper", "servers", rc.Servers, "root", rc.Root, "session_timeout", rc.SessionTimeout)
	sess, err := registry.Connect(ctx, rc, c.log.Named("zk"))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("zookeeper: %w", err)
	}
	defer sess.Close()
	c.mu.Lock()
	c.sess = sess
	c.mu.Unlock()

	cancelSub := sess.Subscribe(c.onStatus)
	defer cancelSub()

	c.rec = c.record(election.Candidate, "")
	c.log.Info("registering", "node", c.cfg.Name, "zeo", c.rec.ZEO, "replication", c.rec.Replication, "last_tid", c.rec.LastTid)
	if err := sess.Register(ctx, c.rec); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("register: %w", err)
	}
	if err := sess.Advertise(c.rec.ZEO, true); err != nil {
		return fmt.Errorf("advertise: %w", err)
	}

	wctx, stopWatches := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopWatches()
		wg.Wait()
	}()
	wg.Add(3)
	go func() { defer wg.Done(); sess.WatchPrimary(wctx, c.onPrimary) }()
	go func() { defer wg.Done(); sess.WatchNodes(wctx, c.onNodes) }()
	go func() { defer wg.Done(); sess.WatchControl(wctx, c.onControl) }()

	tick := time.NewTicker(recordEvery)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			c.shutdown(sess)
			return nil
		case <-c.poke:
		case <-timer.C:
		case <-tick.C:
			c.refreshRecord(sess)
			if !c.verifyAgain {
				continue
			}
		}
		c.step(ctx, sess)
		if d, ok := c.el.Deadline(); ok {
			timer.Reset(max(time.Until(d), time.Millisecond))
		}
	}
}

// onStatus runs on every session state change. A primary stops accepting
// commits here, at once, rather than when the run loop gets to it: by the
// time go-zookeeper reports a disconnection much of the session timeout
// may be gone.
func (c *cluster) onStatus(st registry.Status) {
	if !st.HasSession() && c.primary.Load() && !c.n.zeo.Fenced() {
		c.n.zeo.Fence("ZooKeeper session " + st.State.String())
		c.log.Warn("fenced: ZooKeeper session in doubt; commits refused until the primary znode is verified",
			"state", st.State.String(), "epoch", c.epoch.Load())
	}
	c.wake()
}

func (c *cluster) onPrimary(v registry.PrimaryView) {
	sess := c.session()
	// The epoch and sync znodes change together with the primary znode;
	// reading them here keeps the view consistent (a torn view is refused
	// by the elector and fixed by the next read).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ep, eerr := sess.ReadEpoch(ctx)
	sy, serr := sess.ReadSync(ctx)
	c.mu.Lock()
	c.pview, c.havePrim = v, true
	if eerr == nil {
		c.ep = ep
	}
	if serr == nil {
		c.sync = sy
	}
	c.mu.Unlock()
	if v.Present {
		c.noteEpoch(v.Record.Epoch)
	}
	c.wake()
}

func (c *cluster) onNodes(recs []registry.NodeRecord) {
	c.mu.Lock()
	c.nodes, c.haveNode = recs, true
	c.mu.Unlock()
	c.wake()
}

func (c *cluster) onControl(ctl registry.Control) {
	c.mu.Lock()
	c.control = ctl
	c.mu.Unlock()
	c.wake()
}

func (c *cluster) session() *registry.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// refreshEpoch re-reads the epoch and sync znodes before a decision
// that depends on them (an election).
func (c *cluster) refreshEpoch(ctx context.Context, sess *registry.Session) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ep, err := sess.ReadEpoch(ctx)
	if err != nil {
		return
	}
	sy, err := sess.ReadSync(ctx)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.ep, c.sync = ep, sy
	c.mu.Unlock()
}

// view builds the elector's view from the watches and local state.
func (c *cluster) view(st registry.Status) election.View {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := election.View{
		Self:               c.cfg.Name,
		Connected:          st.HasSession() && c.havePrim && c.haveNode,
		Nodes:              make(map[string]election.NodeInfo, len(c.nodes)),
		Epoch:              c.ep.Value,
		EpochVersion:       c.ep.Version,
		SyncMode:           c.cfg.Replication.Synchronous > 0,
		ConfiguredUpstream: c.cfg.Replication.Upstream,
		Now:                time.Now(),
	}
	// Ranked by what is durable, held for a release or not: a secondary
	// holding a commit the old primary acknowledged must win.
	local := c.n.store.LastDurable()
	for _, r := range c.nodes {
		role, err := election.ParseRole(string(r.Role))
		if err != nil {
			c.log.Warn("ignoring a node record with an unknown role", "node", r.Name, "role", r.Role)
			continue
		}
		info := election.NodeInfo{
			Name: r.Name, ZEOAddr: r.ZEO, ReplAddr: r.Replication, Role: role, Epoch: r.Epoch,
			LastTid: r.LastTid, Upstream: r.Upstream, Priority: r.Priority, NoFailover: r.NoFailover,
			Settled: true,
		}
		if r.Name == c.cfg.Name {
			// Everyone ranks the published last tid, so this node may
			// run only once what it published is what it holds.
			info.Settled = r.LastTid == local
		}
		v.Nodes[r.Name] = info
	}
	if p := c.pview; p.Present {
		v.Primary = &election.PrimaryInfo{
			Name: p.Record.Name, ZEOAddr: p.Record.ZEO, ReplAddr: p.Record.Replication,
			Epoch: p.Record.Epoch, Owned: p.Owner == st.SessionID && st.HasSession(),
		}
	}
	if c.sync.Epoch != 0 || c.sync.Primary != "" {
		v.Sync = &election.SyncInfo{Epoch: c.sync.Epoch, Primary: c.sync.Primary, Members: c.sync.Members}
	}
	if r := c.n.replica; r != nil {
		v.LastSeenPrimaryTid = r.Lag().UpstreamLast
	}
	if m := c.control.Maintenance; m != nil {
		v.Paused = m.Paused
	}
	if sw := c.control.Switchover; sw != nil {
		v.Switchover = &election.SwitchoverInfo{From: sw.From, To: sw.To, Epoch: sw.Epoch}
	}
	return v
}

// step feeds the elector the current view and carries out its actions.
func (c *cluster) step(ctx context.Context, sess *registry.Session) {
	st := sess.Status()
	c.mu.Lock()
	noPrimary := c.havePrim && !c.pview.Present
	c.mu.Unlock()
	if noPrimary && st.HasSession() {
		c.refreshEpoch(ctx, sess)
	}
	if c.verifyAgain {
		c.verify(ctx, sess)
	}
	c.maybeHandOver(ctx, sess)
	v := c.view(st)
	if v.Primary != nil {
		c.noteEpoch(v.Primary.Epoch)
	}
	acts := c.el.Step(v)
	for _, a := range acts {
		c.act(ctx, sess, st, v, a)
	}
	c.refreshRecord(sess)
}

func (c *cluster) act(ctx context.Context, sess *registry.Session, st registry.Status, v election.View, a election.Action) {
	switch a := a.(type) {
	case election.RunForPrimary:
		c.log.Info("running for primary", "epoch", a.NewEpoch, "last_tid", c.n.store.LastDurable(), "reason", a.Reason)
		rec := registry.PrimaryRecord{Name: c.cfg.Name, ZEO: c.cfg.Advertise.ZEO, Replication: c.cfg.Advertise.Replication}
		rctx, cancel := context.WithTimeout(ctx, c.cfg.RegistryConfig().SessionTimeout)
		term, err := sess.RunForPrimary(rctx, a.EpochVersion, a.NewEpoch, rec)
		cancel()
		switch {
		case err == nil:
			c.won = term
		case errors.Is(err, registry.ErrLostRace):
			c.log.Info("lost the election race", "epoch", a.NewEpoch, "error", err)
			c.refreshEpoch(ctx, sess)
		default:
			c.log.Warn("running for primary failed", "epoch", a.NewEpoch, "error", err)
			c.refreshEpoch(ctx, sess)
		}
		c.wake()
	case election.Promote:
		c.promote(ctx, sess, st, v, a)
	case election.Follow:
		c.follow(sess, a)
	case election.Fence:
		if !c.n.zeo.Fenced() { // else onStatus fenced and logged it already
			c.log.Warn("fenced: commits refused", "epoch", c.epoch.Load(), "reason", a.Reason)
		}
		c.n.zeo.Fence(a.Reason)
		sess.Unadvertise()
		c.setRole(election.Fenced, "")
	case election.Unfence:
		c.verifyAgain = true
		c.verify(ctx, sess)
	case election.Demote:
		c.demote(sess, a)
	}
}

// promote makes this node the primary of a.Epoch.
func (c *cluster) promote(ctx context.Context, sess *registry.Session, st registry.Status, v election.View, a election.Promote) {
	term := c.won
	if term.Epoch != a.Epoch || term.SessionID != st.SessionID {
		// Won in a call whose answer was lost: the view has the rest.
		term = registry.Term{Epoch: a.Epoch, EpochVersion: v.EpochVersion, SessionID: st.SessionID}
	}
	c.setTerm(term)
	c.primary.Store(true)
	// Nothing may still be applying from the old upstream when the
	// first commit of the new epoch is written.
	if r := c.n.replica; r != nil {
		r.SetUpstream("")
		deadline := time.Now().Add(5 * time.Second)
		for r.Lag().Connected && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	// Durable is enough: transactions held for a release from the old
	// primary become visible under this node's own gate (or at once).
	if err := c.n.store.FlushDurable(); err != nil {
		c.log.Error("flushing before promotion failed", "error", err)
	}
	c.epoch.Store(a.Epoch)
	c.noteEpoch(a.Epoch)
	c.n.setEpoch(a.Epoch)
	if err := c.n.startSync(ctx, sess, term); err != nil {
		c.log.Error("synchronous replication could not start; fenced", "error", err)
		c.n.zeo.Fence("synchronous replication could not start: " + err.Error())
	} else {
		c.n.zeo.Unfence()
	}
	c.startLease(ctx, sess, term)
	c.n.zeo.SetReadOnly(false)
	if err := sess.Advertise(c.cfg.Advertise.ZEO, false); err != nil {
		c.log.Warn("advertising the primary's ZEO address failed", "error", err)
	}
	c.setRole(election.Primary, "")
	c.log.Info("promoted: serving commits as primary", "epoch", a.Epoch, "last_tid", c.n.store.LastTransaction(), "reason", a.Reason)
	c.clearDoneSwitchover(ctx, sess)
}

// follow (re-)points replication at a.ReplAddr as a read-only secondary.
func (c *cluster) follow(sess *registry.Session, a election.Follow) {
	c.primary.Store(false)
	c.n.zeo.SetReadOnly(true)
	c.n.zeo.Unfence()
	c.epoch.Store(a.Epoch)
	c.noteEpoch(a.Epoch)
	c.n.setEpoch(a.Epoch)
	if r := c.n.replica; r != nil {
		r.SetUpstream(a.ReplAddr)
	}
	if err := sess.Advertise(c.cfg.Advertise.ZEO, true); err != nil {
		c.log.Warn("advertising the read-only ZEO address failed", "error", err)
	}
	c.setRole(election.Secondary, a.Upstream)
	c.log.Info("following", "upstream", a.Upstream, "address", a.ReplAddr, "epoch", a.Epoch,
		"last_tid", c.n.store.LastDurable(), "reason", a.Reason)
}

// demote stops this node accepting commits and sends its clients away.
func (c *cluster) demote(sess *registry.Session, a election.Demote) {
	c.primary.Store(false)
	c.verifyAgain = false
	c.endLease()
	c.n.zeo.SetReadOnly(true)
	c.n.zeo.Unfence()
	c.n.zeo.DropClients()
	c.n.stopSync()
	sess.Unadvertise()
	c.setTerm(registry.Term{})
	c.setRole(election.Candidate, "")
	c.log.Warn("demoted to candidate", "last_tid", c.n.store.LastDurable(), "reason", a.Reason)
}

// verify finishes an Unfence: commits resume only once ZooKeeper confirms,
// with an up-to-date read, that this session still holds the primary
// znode of the term.
func (c *cluster) verify(ctx context.Context, sess *registry.Session) {
	vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := sess.VerifyPrimary(vctx, c.currentTerm())
	cancel()
	switch {
	case err == nil:
		c.verifyAgain = false
		c.n.zeo.Unfence()
		if err := sess.Advertise(c.cfg.Advertise.ZEO, false); err != nil {
			c.log.Warn("advertising the primary's ZEO address failed", "error", err)
		}
		c.setRole(election.Primary, "")
		c.log.Info("unfenced: the primary znode is still this node's", "epoch", c.currentTerm().Epoch)
	case errors.Is(err, registry.ErrNotPrimary):
		c.verifyAgain = false
		c.log.Warn("still fenced: no longer the primary", "error", err)
		c.wake()
	default:
		c.log.Warn("still fenced: could not verify the primary znode yet", "error", err)
	}
}

func (c *cluster) setRole(role election.Role, upstream string) {
	c.rec.Role = registry.Role(role.String())
	c.rec.Upstream = upstream
	c.rec.Epoch = c.epoch.Load()
	c.noteRole(role, upstream)
}

// record returns the node's record for nodes/<name>.
func (c *cluster) record(role election.Role, upstream string) registry.NodeRecord {
	f := c.cfg.Failover
	return registry.NodeRecord{
		Name: c.cfg.Name, ZEO: c.cfg.Advertise.ZEO, Replication: c.cfg.Advertise.Replication,
		Role: registry.Role(role.String()), Epoch: c.epoch.Load(), LastTid: c.n.store.LastDurable(),
		Upstream: upstream, Priority: f.Priority, NoFailover: f.NoFailover, Version: Version, PID: os.Getpid(),
	}
}

// refreshRecord publishes the node's current last tid and role.
func (c *cluster) refreshRecord(sess *registry.Session) {
	c.rec.LastTid = c.n.store.LastDurable()
	if err := sess.Update(c.rec); err != nil {
		c.log.Warn("updating the node record failed", "error", err)
	}
}

// shutdown withdraws the node from the cluster on a graceful stop: a
// primary resigns so that a successor is elected at once rather than
// after the session timeout.
func (c *cluster) shutdown(sess *registry.Session) {
	c.n.zeo.Fence("node shutting down")
	if c.primary.Load() {
		// The successor will be the freshest node: give the secondaries a
		// moment to acknowledge the last commits, so that an
		// asynchronous cluster loses nothing on a planned stop either.
		if err := c.waitSecondariesCaughtUp(5 * time.Second); err != nil {
			c.log.Warn("stopping before every secondary caught up", "error", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := sess.Resign(ctx, c.currentTerm()); err != nil {
			c.log.Warn("resigning as primary failed; successors wait for the session to expire", "error", err)
		}
		cancel()
	}
}

// startLease makes commits conditional on a lease: a recent ZooKeeper
// round trip that found the primary znode held by this term's session.
// The session cannot expire less than a session timeout after ZooKeeper
// last heard from it, so half of that is a safe validity; a process that
// was frozen (SIGSTOP, a VM pause) finds its lease stale when it resumes,
// before its ZooKeeper client has noticed anything.
func (c *cluster) startLease(ctx context.Context, sess *registry.Session, term registry.Term) {
	c.endLease()
	timeout := c.cfg.RegistryConfig().SessionTimeout
	valid := timeout / 2
	lctx, cancel := context.WithCancel(ctx)
	c.stopLease = cancel
	c.lease.Store(nil)
	c.renewLease(sess, term)
	c.n.zeo.SetCommitGuard(func() error {
		sent := c.lease.Load()
		if sent == nil {
			return errors.New("ZooKeeper lease not confirmed yet")
		}
		if age := time.Since(*sent); age > valid {
			return fmt.Errorf("ZooKeeper lease last confirmed %v ago (valid for %v)", age.Round(time.Millisecond), valid)
		}
		return nil
	})
	go func() {
		t := time.NewTicker(timeout / 8)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
				c.renewLease(sess, term)
			}
		}
	}()
}

// renewLease extends the lease if the primary znode is still this term's.
func (c *cluster) renewLease(sess *registry.Session, term registry.Term) {
	sent := time.Now()
	ok, stat, err := sess.Conn().Exists(sess.Paths().Primary)
	if err != nil || !ok || stat.EphemeralOwner != term.SessionID || sess.Status().SessionID != term.SessionID {
		return
	}
	c.lease.Store(&sent)
}

func (c *cluster) endLease() {
	if c.stopLease != nil {
		c.stopLease()
		c.stopLease = nil
	}
	c.n.zeo.SetCommitGuard(nil)
}

func (c *cluster) setTerm(t registry.Term) {
	c.mu.Lock()
	c.term = t
	c.mu.Unlock()
}

func (c *cluster) currentTerm() registry.Term {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.term
}

// highestEpoch is the replica's view of the newest epoch.
func (c *cluster) highestEpoch() uint64 { return c.maxEpoch.Load() }

// servedEpoch is the feed's epoch.
func (c *cluster) servedEpoch() uint64 { return c.epoch.Load() }

// writeSync publishes the synchronous member set as the primary of the
// current term; the feed calls it before it acknowledges a commit that
// some former member has not acknowledged.
func (c *cluster) writeSync(ctx context.Context, members []string) error {
	sess := c.session()
	if sess == nil {
		return registry.ErrNotConnected
	}
	err := sess.WriteSync(ctx, c.currentTerm(), registry.SyncRecord{Primary: c.cfg.Name, Members: members})
	if err != nil {
		return fmt.Errorf("%w: publishing synchronous members %v: %w", ErrTransient, members, err)
	}
	c.log.Info("synchronous members changed", "members", members, "epoch", c.epoch.Load())
	return nil
}

// clusterSnapshot is what the cluster driver shows of itself to
// Node.Status and the metrics (status.go).
type clusterSnapshot struct {
	Role     election.Role
	Upstream string // the node followed, while a secondary
	Epoch    uint64
	Primary  string // the node the primary znode names, "" when none
	Sync     registry.SyncRecord
	Paused   bool
	Session  registry.Status
	sess     *registry.Session // nil until connected
}

// snapshot returns a consistent read-only copy of the driver's state.
func (c *cluster) snapshot() clusterSnapshot {
	c.mu.Lock()
	s := clusterSnapshot{Role: c.role, Upstream: c.upstream, Epoch: c.epoch.Load(), Sync: c.sync, sess: c.sess}
	if c.pview.Present {
		s.Primary = c.pview.Record.Name
	}
	if m := c.control.Maintenance; m != nil {
		s.Paused = m.Paused
	}
	c.mu.Unlock()
	if s.sess != nil {
		s.Session = s.sess.Status()
	}
	return s
}

// noteRole keeps the role for snapshot and counts the change.
func (c *cluster) noteRole(role election.Role, upstream string) {
	c.mu.Lock()
	old := c.role
	c.role, c.upstream = role, upstream
	c.mu.Unlock()
	c.n.metrics.roleChanged(old, role, c.epoch.Load())
}
