package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/go-hclog"
)

// Errors of this package; test with errors.Is.
var (
	// ErrNotConnected: the operation needs a ZooKeeper session and there is
	// none right now (retry once Status says StateConnected).
	ErrNotConnected = errors.New("registry: no ZooKeeper session")
	// ErrClosed: the Session was closed.
	ErrClosed = errors.New("registry: session closed")
)

// State is the state of a Session's ZooKeeper session.
type State int

// The states.
const (
	// StateConnecting: no session has been established yet.
	StateConnecting State = iota
	// StateConnected: there is a session and a connection (go-zookeeper's
	// StateHasSession); the only state in which ZooKeeper serves us.
	StateConnected
	// StateDisconnected: the connection was lost; the session lives on if
	// the client reconnects within the session timeout.
	StateDisconnected
	// StateExpired: the session expired (its ephemerals are gone); the
	// client is setting up a new one.
	StateExpired
	// StateClosed: Close was called.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateExpired:
		return "expired"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Status is a snapshot of a Session's state. Its counters only grow, so a
// subscriber that sees only the latest Status still learns that a session
// expired or was replaced in between.
type Status struct {
	State State
	// SessionID is the current session (StateConnected) or the last one;
	// 0 before the first.
	SessionID int64
	// Generation counts the sessions established so far: 1 after the
	// first, 2 after the first expiry and reconnection, ...
	Generation uint64
	// Expirations counts the sessions that expired.
	Expirations uint64
	// Server is the server of the current (or last) connection.
	Server string
}

// HasSession reports whether ZooKeeper serves the session right now.
func (st Status) HasSession() bool { return st.State == StateConnected }

// Session is one ZooKeeper session of a node (transparently replaced by a
// new one after an expiry), with everything the node keeps in ZooKeeper.
// Its methods are safe for concurrent use.
type Session struct {
	cfg   Config
	paths Paths
	log   hclog.Logger
	conn  *zk.Conn
	ready chan struct{} // closed once conn is set

	mu      sync.Mutex
	status  Status
	changed chan struct{} // closed and replaced at every status change
	past    map[int64]bool
	lastErr string // the last connection failure the library reported

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	k keeper
}

// Connect sets up a ZooKeeper client for cfg and waits, forever unless ctx
// ends, for a session, logging at WARN while ZooKeeper is unavailable;
// then it makes sure the cluster's persistent znodes exist. log may be nil.
func Connect(ctx context.Context, cfg Config, log hclog.Logger) (*Session, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Session{
		cfg:     cfg,
		paths:   cfg.Paths(),
		log:     log,
		ready:   make(chan struct{}),
		changed: make(chan struct{}),
		past:    make(map[int64]bool),
		closing: make(chan struct{}),
	}
	s.k.init()
	dialer := cfg.Dialer
	if dialer == nil {
		dialer = net.DialTimeout
	}
	log.Info("connecting to ZooKeeper", "servers", strings.Join(cfg.Servers, ","),
		"root", cfg.Root, "session_timeout", cfg.SessionTimeout)
	for {
		conn, _, err := zk.Connect(cfg.Servers, cfg.SessionTimeout,
			zk.WithEventCallback(s.onEvent),
			zk.WithLogger(zkLogger{s}),
			zk.WithLogInfo(false),
			zk.WithDialer(dialer))
		if err == nil {
			// The event channel returned above is left unread: the
			// library drops what does not fit, and onEvent sees all.
			s.conn = conn
			close(s.ready)
			break
		}
		log.Warn("cannot set up the ZooKeeper client; retrying", "servers", strings.Join(cfg.Servers, ","), "error", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("registry: connecting to ZooKeeper: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
	s.wg.Add(1)
	go s.keep()
	if err := s.waitSession(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.EnsurePaths(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// waitLog is when waitSession logs that it is still waiting: first after
// waitLog[0], then every waitLog[1].
var waitLog = [2]time.Duration{time.Second, 10 * time.Second}

func (s *Session) waitSession(ctx context.Context) error {
	start := time.Now()
	timer := time.NewTimer(waitLog[0])
	defer timer.Stop()
	warned := false
	for {
		st, ch := s.StatusChan()
		switch st.State {
		case StateConnected:
			if warned {
				s.log.Info("ZooKeeper is available again", "waited", time.Since(start).Round(time.Millisecond))
			}
			return nil
		case StateClosed:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-timer.C:
			warned = true
			s.log.Warn("ZooKeeper unavailable; waiting for a session",
				"servers", strings.Join(s.cfg.Servers, ","), "waited", time.Since(start).Round(time.Second),
				"last_error", s.lastError())
			timer.Reset(waitLog[1])
		case <-ctx.Done():
			return fmt.Errorf("registry: no ZooKeeper session with %s after %s: %w (last error: %s)",
				strings.Join(s.cfg.Servers, ","), time.Since(start).Round(time.Millisecond), ctx.Err(), s.lastError())
		}
	}
}

// WaitConnected waits until the session is usable (StateConnected).
func (s *Session) WaitConnected(ctx context.Context) error {
	for {
		st, ch := s.StatusChan()
		switch st.State {
		case StateConnected:
			return nil
		case StateClosed:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("registry: waiting for a ZooKeeper session: %w", ctx.Err())
		}
	}
}

// onEvent is go-zookeeper's event callback. It must not block: it only
// updates the status under s.mu and wakes whoever waits for a change.
func (s *Session) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	// Connect returns right after starting the goroutine that calls us,
	// so this wait is momentary; the session id needs the conn.
	<-s.ready
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.status
	if prev.State == StateClosed {
		return
	}
	st := prev
	switch ev.State {
	case zk.StateHasSession:
		sid := s.conn.SessionID()
		st.State, st.SessionID, st.Server = StateConnected, sid, ev.Server
		switch {
		case prev.Generation == 0 || sid != prev.SessionID:
			st.Generation++
			s.past[sid] = true
			if prev.Generation == 0 {
				s.log.Info("ZooKeeper session established", "session", sessionHex(sid), "server", ev.Server)
			} else {
				s.log.Info("new ZooKeeper session established", "session", sessionHex(sid),
					"previous", sessionHex(prev.SessionID), "server", ev.Server)
			}
		case prev.State != StateConnected:
			s.log.Info("ZooKeeper connection restored; session kept", "session", sessionHex(sid), "server", ev.Server)
		}
	case zk.StateExpired:
		st.State = StateExpired
		st.Expirations++
		s.log.Warn("ZooKeeper session expired; its ephemeral znodes are gone", "session", sessionHex(prev.SessionID))
	case zk.StateDisconnected:
		if prev.State == StateConnected {
			st.State = StateDisconnected
			if s.isClosing() {
				break
			}
			s.log.Warn("lost the ZooKeeper connection; the session survives if it reconnects in time",
				"session", sessionHex(prev.SessionID), "server", prev.Server, "session_timeout", s.cfg.SessionTimeout)
		}
	case zk.StateAuthFailed:
		s.log.Error("ZooKeeper authentication failed", "server", ev.Server)
	}
	if st != prev {
		s.status = st
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

// zkLogger routes go-zookeeper's own messages to DEBUG (this package logs
// what matters) and remembers the last connection failure.
type zkLogger struct{ s *Session }

func (l zkLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.HasPrefix(msg, "failed to connect") || strings.HasPrefix(msg, "authentication failed") {
		l.s.mu.Lock()
		l.s.lastErr = msg
		l.s.mu.Unlock()
	}
	if strings.HasPrefix(msg, "Failed to set previous watches") {
		l.s.log.Warn("go-zookeeper: " + msg)
		return
	}
	l.s.log.Debug("go-zookeeper: " + msg)
}

func (s *Session) lastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr == "" {
		return "none yet"
	}
	return s.lastErr
}

func sessionHex(sid int64) string { return fmt.Sprintf("0x%x", uint64(sid)) }

// Status returns the current status.
func (s *Session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// StatusChan returns the current status and a channel that is closed at
// the next change.
func (s *Session) StatusChan() (Status, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status, s.changed
}

// Subscribe calls fn with the current status and then after changes, from
// a goroutine of its own, one call at a time; when fn is slow,
// intermediate statuses are skipped (the counters in Status tell what
// happened). It stops when the returned function is called or the Session
// is closed (after a last call with StateClosed).
func (s *Session) Subscribe(fn func(Status)) (cancel func()) {
	stop := make(chan struct{})
	var once sync.Once
	go func() {
		var last Status
		first := true
		for {
			st, ch := s.StatusChan()
			if first || st != last {
				fn(st)
				first, last = false, st
			}
			if st.State == StateClosed {
				return
			}
			select {
			case <-ch:
			case <-stop:
				return
			}
		}
	}()
	return func() { once.Do(func() { close(stop) }) }
}

// isPast reports whether sid is one of this Session's sessions.
func (s *Session) isPast(sid int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.past[sid]
}

// Config returns the configuration (with defaults).
func (s *Session) Config() Config { return s.cfg }

// Paths returns the cluster's paths.
func (s *Session) Paths() Paths { return s.paths }

// Conn returns the underlying go-zookeeper connection, for what this
// package does not cover. Do not close it; close the Session.
func (s *Session) Conn() *zk.Conn { return s.conn }

// Close ends the session: ZooKeeper deletes its ephemerals at once (the
// node record, the provider entry, the primary znode if held). Watches
// stop. It may take a second or two when ZooKeeper is unreachable.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		// Closing the connection first also ends any ZooKeeper call the
		// keeper is blocked in.
		if s.conn != nil {
			s.conn.Close()
		}
		s.wg.Wait()
		s.mu.Lock()
		s.status.State = StateClosed
		close(s.changed)
		s.changed = make(chan struct{})
		sid := s.status.SessionID
		s.mu.Unlock()
		if sid != 0 {
			s.log.Info("ZooKeeper session closed", "session", sessionHex(sid))
		}
	})
}

func (s *Session) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// isConnErr reports errors that mean "no answer from ZooKeeper in this
// session": retry once connected again.
func isConnErr(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved) ||
		errors.Is(err, zk.ErrClosing) || errors.Is(err, ErrNotConnected)
}

// call runs a blocking ZooKeeper operation, giving up on it (it finishes
// in the background) when ctx ends or the Session closes.
func call[T any](ctx context.Context, s *Session, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	case <-s.closing:
		var zero T
		return zero, ErrClosed
	}
}

// retry runs op once connected, again after each connection error, until
// it succeeds, fails otherwise, or ctx ends.
func (s *Session) retry(ctx context.Context, op func() error) error {
	for {
		if s.isClosing() {
			return ErrClosed
		}
		if err := s.WaitConnected(ctx); err != nil {
			return err
		}
		_, ch := s.StatusChan()
		err := op()
		if err == nil || !isConnErr(err) {
			return err
		}
		// Wait for the status to move (disconnected, then back), but not
		// forever if it already had moved before op failed.
		select {
		case <-ch:
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-s.closing:
			return ErrClosed
		}
	}
}

// EnsurePaths creates the cluster's persistent znodes that are missing:
// the root and its parents, nodes, providers, readonly/providers, epoch
// ("0") and sync (empty). Creating what exists is not an error, so any
// number of nodes may run it at once.
func (s *Session) EnsurePaths(ctx context.Context) error {
	return s.retry(ctx, func() error {
		_, err := call(ctx, s, func() (struct{}, error) { return struct{}{}, s.ensurePaths() })
		return err
	})
}

func (s *Session) ensurePaths() error {
	p := s.paths
	var todo []string
	parts := strings.Split(p.Root[1:], "/")
	for i := range parts {
		todo = append(todo, "/"+strings.Join(parts[:i+1], "/"))
	}
	todo = append(todo, p.Nodes, p.Providers, p.ReadOnly, p.ReadOnlyProviders)
	for _, path := range todo {
		if err := s.createIfMissing(path, nil); err != nil {
			return err
		}
	}
	if err := s.createIfMissing(p.Epoch, formatEpoch(0)); err != nil {
		return err
	}
	return s.createIfMissing(p.Sync, nil)
}

func (s *Session) createIfMissing(path string, data []byte) error {
	ok, _, err := s.conn.Exists(path)
	if err != nil {
		return fmt.Errorf("registry: checking %s: %w", path, err)
	}
	if ok {
		return nil
	}
	_, err = s.conn.Create(path, data, 0, zk.WorldACL(zk.PermAll))
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("registry: creating %s: %w", path, err)
	}
	return nil
}
