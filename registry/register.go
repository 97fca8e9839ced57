package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// UpdateEvery is the least time between two writes of the node record
// while only its last tid moves.
const UpdateEvery = 100 * time.Millisecond

// updateEvery is UpdateEvery, but tests may stretch it.
var updateEvery = UpdateEvery

// keeper holds the ephemerals the Session owns (the node record and the
// provider entry) and a goroutine (keep) that makes ZooKeeper hold them:
// creating them in every new session, writing changes, removing what is
// no longer wanted.
type keeper struct {
	mu      sync.Mutex
	entries map[string]*ephemeral
	node    *ephemeral // the node record, once registered
	seq     uint64     // bumped at every change of what is wanted
	flush   uint64     // the highest seq a Flush waits for
	done    keeperDone // the last state ZooKeeper was seen to match
	doneCh  chan struct{}
	kick    chan struct{}
}

// keeperDone says that ZooKeeper held everything wanted as of change seq
// in session sid.
type keeperDone struct {
	seq uint64
	sid int64
}

type ephemeral struct {
	path     string
	kind     string // for logs
	isNode   bool
	provider bool

	// What is wanted (set by the API, under keeper.mu).
	want bool
	data []byte
	rec  NodeRecord // node record: the wanted record

	// What ZooKeeper holds as far as the keeper knows (written by the
	// keep goroutine only, under keeper.mu).
	sid     int64 // session in which we created it; 0: none
	version int32 // data version after our last write
	written []byte
	wrec    NodeRecord
	wrote   time.Time
	retryAt time.Time
	warned  int64 // the foreign owner last warned about
}

func (k *keeper) init() {
	k.entries = make(map[string]*ephemeral)
	k.doneCh = make(chan struct{})
	k.kick = make(chan struct{}, 1)
}

func (k *keeper) poke() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// entry returns the entry of path, adding it if needed; k.mu is held.
func (k *keeper) entry(path, kind string) *ephemeral {
	e := k.entries[path]
	if e == nil {
		e = &ephemeral{path: path, kind: kind}
		k.entries[path] = e
	}
	return e
}

// changed records a change of what is wanted; k.mu is held.
func (k *keeper) changed() {
	k.seq++
	k.poke()
}

// Register publishes the node's record as the ephemeral nodes/<name> and
// keeps it there, in this and every later session, until Close. It
// returns once ZooKeeper holds it, or when ctx ends (the Session keeps
// trying in the background). A PID of 0 is replaced by this process's.
//
// If nodes/<name> is held by another session (another process with the
// same name, or this node's previous run whose session has not expired
// yet) it is not taken over: Register logs a warning and waits for it to
// go away.
func (s *Session) Register(ctx context.Context, rec NodeRecord) error {
	if err := checkName(rec.Name); err != nil {
		return fmt.Errorf("registry: node name %q: %v", rec.Name, err)
	}
	if rec.PID == 0 {
		rec.PID = os.Getpid()
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	path := s.paths.Node(rec.Name)
	k := &s.k
	k.mu.Lock()
	if k.node != nil && k.node.path != path {
		k.mu.Unlock()
		return fmt.Errorf("registry: already registered as %s", k.node.path)
	}
	if k.node == nil {
		k.node = k.entry(path, "node record")
		k.node.isNode = true
	}
	k.node.want, k.node.data, k.node.rec = true, data, rec
	k.changed()
	k.mu.Unlock()
	return s.Flush(ctx)
}

// Update replaces the node's record. It does not wait: a change of
// anything but LastTid is written at once, a change of LastTid alone at
// most every UpdateEvery (the latest value wins). Flush waits for the
// write.
func (s *Session) Update(rec NodeRecord) error {
	if rec.PID == 0 {
		rec.PID = os.Getpid()
	}
	k := &s.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.node == nil {
		return errors.New("registry: Update before Register")
	}
	if rec.Name != k.node.rec.Name {
		return fmt.Errorf("registry: registered as %q, cannot update to %q", k.node.rec.Name, rec.Name)
	}
	if rec == k.node.rec {
		return nil
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	k.node.data, k.node.rec = data, rec
	k.changed()
	return nil
}

// Advertise publishes zeoAddr for zc.zkzeo clients: as the ephemeral
// providers/<zeoAddr> (the primary) or, when readOnly,
// readonly/providers/<zeoAddr> (secondaries), with data {"pid": N}. An
// entry advertised before under another path is removed first, so a
// demoted node stops attracting writers before it attracts readers. Like
// the node record, the entry is re-created in every new session. It does
// not wait; Flush does.
func (s *Session) Advertise(zeoAddr string, readOnly bool) error {
	if err := checkAdvertised(zeoAddr); err != nil {
		return err
	}
	data, err := json.Marshal(ProviderRecord{PID: os.Getpid()})
	if err != nil {
		return err
	}
	path := s.paths.Provider(zeoAddr, readOnly)
	k := &s.k
	k.mu.Lock()
	defer k.mu.Unlock()
	for p, e := range k.entries {
		if e.provider && p != path {
			e.want = false
		}
	}
	e := k.entry(path, "provider entry")
	e.provider, e.want, e.data = true, true, data
	k.changed()
	return nil
}

// Unadvertise removes the provider entry (a fenced node serves nobody).
func (s *Session) Unadvertise() {
	k := &s.k
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range k.entries {
		if e.provider {
			e.want = false
		}
	}
	k.changed()
}

// Flush waits until ZooKeeper holds, in the current session, everything
// registered, updated and advertised so far (rate limit or not).
func (s *Session) Flush(ctx context.Context) error {
	k := &s.k
	k.mu.Lock()
	target := k.seq
	k.flush = max(k.flush, target)
	k.mu.Unlock()
	k.poke()
	for {
		k.mu.Lock()
		done, ch := k.done, k.doneCh
		k.mu.Unlock()
		st := s.Status()
		if st.State == StateClosed {
			return ErrClosed
		}
		if st.State == StateConnected && done.seq >= target && done.sid == st.SessionID {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("registry: waiting for ZooKeeper to hold the node's znodes: %w", ctx.Err())
		case <-s.closing:
			return ErrClosed
		}
	}
}

// keep is the keeper's goroutine: a reconciling pass at every status
// change, every change of what is wanted, and when a timer or a watch
// says so.
func (s *Session) keep() {
	defer s.wg.Done()
	for {
		st, stCh := s.StatusChan()
		var wake time.Time
		var watches []<-chan zk.Event
		if st.State == StateConnected {
			wake, watches = s.reconcile(st.SessionID)
		}
		stop := make(chan struct{})
		for _, w := range watches {
			go func() {
				select {
				case <-w:
					s.k.poke()
				case <-stop:
				}
			}()
		}
		var timerC <-chan time.Time
		var timer *time.Timer
		if !wake.IsZero() {
			timer = time.NewTimer(max(time.Until(wake), 0))
			timerC = timer.C
		}
		select {
		case <-stCh:
		case <-s.k.kick:
		case <-timerC:
		case <-s.closing:
			close(stop)
			return
		}
		close(stop)
		if timer != nil {
			timer.Stop()
		}
	}
}

type wanted struct {
	e    *ephemeral
	want bool
	data []byte
	rec  NodeRecord
}

// reconcile makes ZooKeeper hold what is wanted, in session sid. It
// returns when to try again (zero: nothing pending) and watches whose
// firing should trigger another pass.
func (s *Session) reconcile(sid int64) (wake time.Time, watches []<-chan zk.Event) {
	k := &s.k
	k.mu.Lock()
	seq := k.seq
	force := k.flush > k.done.seq // a Flush waits: ignore the rate limit
	todo := make([]wanted, 0, len(k.entries))
	for _, e := range k.entries {
		todo = append(todo, wanted{e, e.want, e.data, e.rec})
	}
	k.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool { return todo[i].e.path < todo[j].e.path })

	pending := false
	later := func(t time.Time) {
		pending = true
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	now := time.Now()
	failed := func(w wanted, what string, err error) bool {
		if isConnErr(err) {
			later(now.Add(200 * time.Millisecond))
			return true // stop this pass; the status will move
		}
		s.log.Warn("cannot "+what+" "+w.e.kind+"; retrying", "path", w.e.path, "error", err)
		k.mu.Lock()
		w.e.retryAt = now.Add(time.Second)
		k.mu.Unlock()
		later(w.e.retryAt)
		return false
	}

	// Withdrawals first: a node never stays advertised as what it no
	// longer is while its new entry is being created.
	for _, w := range todo {
		if w.want {
			continue
		}
		if now.Before(w.e.retryAt) {
			later(w.e.retryAt)
			continue
		}
		removed, err := s.withdraw(w.e, sid)
		if err != nil {
			if failed(w, "remove", err) {
				return wake, watches
			}
			continue
		}
		k.mu.Lock()
		w.e.sid, w.e.written = 0, nil
		if !w.e.want {
			delete(k.entries, w.e.path)
		}
		k.mu.Unlock()
		if removed {
			s.log.Info("removed "+w.e.kind, "path", w.e.path)
		}
	}

	for _, w := range todo {
		e := w.e
		if !w.want || (e.sid == sid && bytes.Equal(e.written, w.data)) {
			continue
		}
		if now.Before(e.retryAt) {
			later(e.retryAt)
			continue
		}
		if e.isNode && e.sid == sid && !force && sameButTid(w.rec, e.wrec) && now.Before(e.wrote.Add(updateEvery)) {
			later(e.wrote.Add(updateEvery))
			continue
		}
		var (
			version int32
			err     error
			watch   <-chan zk.Event
			created bool
		)
		if e.sid == sid {
			var stat *zk.Stat
			stat, err = s.conn.Set(e.path, w.data, e.version)
			if err == nil {
				version = stat.Version
			}
		}
		if e.sid != sid || errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion) {
			version, watch, err = s.ensureEphemeral(e, w.data, sid)
			created = err == nil
		}
		if watch != nil {
			pending = true
			watches = append(watches, watch)
			continue
		}
		if err != nil {
			if failed(w, "write", err) {
				return wake, watches
			}
			continue
		}
		k.mu.Lock()
		e.sid, e.version, e.written, e.wrec, e.wrote, e.retryAt = sid, version, w.data, w.rec, now, time.Time{}
		k.mu.Unlock()
		if created {
			s.log.Info("created "+e.kind, "path", e.path, "session", sessionHex(sid), "data", string(w.data))
		} else {
			s.log.Trace("updated "+e.kind, "path", e.path, "data", string(w.data))
		}
	}

	if !pending {
		// Everything wanted as of seq is there (later changes, if any,
		// have poked the keeper for another pass).
		k.mu.Lock()
		if seq > k.done.seq || sid != k.done.sid {
			k.done = keeperDone{seq, sid}
			close(k.doneCh)
			k.doneCh = make(chan struct{})
		}
		k.mu.Unlock()
	}
	return wake, watches
}

// errHeldByOther: another session holds the ephemeral we want.
var errHeldByOther = errors.New("registry: held by another session")

// ensureEphemeral creates e.path with data in session sid. A znode in the
// way is ours when this session owns it (a create whose answer was lost)
// and stale when an earlier session of ours owns it (it is removed); any
// other owner is waited for: the returned watch fires when it changes.
func (s *Session) ensureEphemeral(e *ephemeral, data []byte, sid int64) (int32, <-chan zk.Event, error) {
	for range 10 {
		_, err := s.conn.Create(e.path, data, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		switch {
		case err == nil:
			return 0, nil, nil
		case errors.Is(err, zk.ErrNoNode): // a parent is missing
			if err := s.ensurePaths(); err != nil {
				return 0, nil, err
			}
			continue
		case !errors.Is(err, zk.ErrNodeExists):
			return 0, nil, err
		}
		got, stat, err := s.conn.Get(e.path)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		switch owner := stat.EphemeralOwner; {
		case owner == sid:
			if bytes.Equal(got, data) {
				return stat.Version, nil, nil
			}
			stat, err := s.conn.Set(e.path, data, stat.Version)
			if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
				continue
			}
			if err != nil {
				return 0, nil, err
			}
			return stat.Version, nil, nil
		case owner == 0:
			return 0, nil, fmt.Errorf("registry: %s exists and is not ephemeral; remove it", e.path)
		case s.isPast(owner):
			s.log.Info("removing the "+e.kind+" an earlier session of ours left", "path", e.path, "owner", sessionHex(owner))
			err := s.conn.Delete(e.path, stat.Version)
			if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
				return 0, nil, err
			}
			continue
		default:
			ok, _, watch, err := s.conn.ExistsW(e.path)
			if err != nil {
				return 0, nil, err
			}
			if !ok {
				continue
			}
			if e.warned != owner {
				e.warned = owner
				s.log.Warn("the "+e.kind+" is held by another ZooKeeper session (another process with this name, or a previous run whose session has not expired yet); waiting for it to go away",
					"path", e.path, "owner", sessionHex(owner), "data", string(got))
			}
			return 0, watch, errHeldByOther
		}
	}
	return 0, nil, fmt.Errorf("registry: %s keeps changing under us", e.path)
}

// withdraw removes e.path if a session of ours holds it.
func (s *Session) withdraw(e *ephemeral, sid int64) (removed bool, err error) {
	_, stat, err := s.conn.Get(e.path)
	if errors.Is(err, zk.ErrNoNode) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if owner := stat.EphemeralOwner; owner != sid && !s.isPast(owner) {
		return false, nil // not ours (any more)
	}
	err = s.conn.Delete(e.path, stat.Version)
	if errors.Is(err, zk.ErrNoNode) {
		return false, nil
	}
	return err == nil, err
}
