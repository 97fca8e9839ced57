package client

// Tests of the cluster-facing behaviour that need no ZooKeeper: error
// classification, epoch and last-tid fencing and moving when a watching
// source changes. The ZooKeeper-backed ones are in
// ../integration/client_discovery_test.go (the integration package
// imports this one).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zrs-go/zrs/internal/testlog"
	"github.com/zrs-go/zrs/node"
	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

func TestRetryableClassification(t *testing.T) {
	transient := replyError(zeo.Tuple{TransientClass, zeo.Tuple{"not acknowledged by synchronous replicas"}})
	readOnly := replyError(zeo.Tuple{"ZODB.POSException.ReadOnlyError", zeo.Tuple{}})
	conflict := replyError(zeo.Tuple{"ZODB.POSException.ConflictError", zeo.NewDict()})
	other := replyError(zeo.Tuple{"ZODB.POSException.StorageError", zeo.Tuple{"disk full"}})
	lost := fmt.Errorf("%w: connection reset", ErrDisconnected)
	for _, tc := range []struct {
		name      string
		err       error
		retryable bool
		is        []error
	}{
		{"disconnected", ErrDisconnected, true, nil},
		{"wrapped disconnected", lost, true, []error{ErrDisconnected}},
		{"not committed: lost before the vote answered", &NotCommittedError{Stage: "vote", Err: lost}, true, []error{ErrDisconnected}},
		{"not committed: no connection", &NotCommittedError{Stage: "connect", Err: lost}, true, []error{ErrDisconnected}},
		{"outcome unknown", &OutcomeUnknownError{Err: lost}, true, []error{ErrDisconnected}},
		{"transient (synchronous replicas)", transient, true, []error{ErrTransient}},
		{"transient at the vote", &NotCommittedError{Stage: "vote", Err: transient}, true, []error{ErrTransient}},
		{"transient at tpc_finish", &OutcomeUnknownError{Err: transient}, true, []error{ErrTransient}},
		{"demoted during a failover", &NotCommittedError{Stage: "vote", Err: readOnly}, true, []error{ErrReadOnly}},
		{"read-only by configuration", readOnly, false, []error{ErrReadOnly}},
		{"conflict", conflict, false, nil},
		{"storage error", other, false, nil},
		{"closed", ErrClosed, false, nil},
		{"caller's context", context.Canceled, false, nil},
		{"stale server", &StaleServerError{Addr: "x", Epoch: 1, Seen: 2}, false, []error{ErrStaleServer}},
		{"nil", nil, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsRetryable(tc.err); got != tc.retryable {
				t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.retryable)
			}
			for _, target := range tc.is {
				if !errors.Is(tc.err, target) {
					t.Errorf("errors.Is(%v, %v) = false", tc.err, target)
				}
			}
		})
	}
	var te *TransientError
	if !errors.As(transient, &te) || !strings.Contains(transient.Error(), "synchronous replicas") {
		t.Errorf("StorageTransientError reply = %#v", transient)
	}
	var ce *storage.ConflictError
	if !errors.As(conflict, &ce) {
		t.Errorf("conflict reply = %#v", conflict)
	}
	if !strings.Contains((&OutcomeUnknownError{Err: lost}).Error(), "unknown") ||
		!strings.Contains((&NotCommittedError{Stage: "vote", Err: lost}).Error(), "nothing was committed") {
		t.Error("the error texts do not say whether the outcome is known")
	}
}

// testServer is a ZEO service on a temporary storage.
type testServer struct {
	addr   string
	store  *storage.FileStorage
	svc    *node.ZEOService
	cancel context.CancelFunc
	done   chan error
}

func startTestServer(t *testing.T, path string, epoch uint64) *testServer {
	t.Helper()
	store, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := node.NewZEOService(node.ZEOServiceConfig{Storage: store})
	if err != nil {
		t.Fatal(err)
	}
	svc.SetEpoch(epoch)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{addr: ln.Addr().String(), store: store, svc: svc, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- svc.Serve(ctx, ln) }()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.store.Close()
	s.cancel = nil
}

// testSource is a WatchingSource and EpochSource the test steers.
type testSource struct {
	mu      sync.Mutex
	addrs   []string
	epoch   uint64
	changed chan struct{}
}

func newTestSource(epoch uint64, addrs ...string) *testSource {
	return &testSource{addrs: addrs, epoch: epoch, changed: make(chan struct{})}
}

func (s *testSource) set(epoch uint64, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs, s.epoch = addrs, epoch
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *testSource) Addresses(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.addrs...), nil
}

func (s *testSource) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *testSource) Epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

func testLogger(buf *testlog.Buffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Debug})
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func dialTest(t *testing.T, opts Options) *Client {
	t.Helper()
	c, err := Dial(testCtx(t, 5*time.Second), "", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func commitOne(ctx context.Context, c *Client, oid storage.Oid, serial storage.Tid, data string) (storage.Tid, error) {
	txn := c.Begin(TxnMeta{User: "test"})
	txn.Store(oid, serial, []byte(data))
	return txn.Commit(ctx)
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGetInfoEpoch(t *testing.T) {
	dir := t.TempDir()
	static := startTestServer(t, filepath.Join(dir, "static.fs"), 0)
	clustered := startTestServer(t, filepath.Join(dir, "clustered.fs"), 7)
	for _, tc := range []struct {
		srv  *testServer
		want uint64
	}{{static, 0}, {clustered, 7}} {
		c := dialTest(t, Options{Source: StaticAddresses{tc.srv.addr}})
		v, err := c.call(testCtx(t, 5*time.Second), "get_info")
		if err != nil {
			t.Fatal(err)
		}
		d := v.(*zeo.Dict)
		if _, has := d.Get("zrs_epoch"); has != (tc.want > 0) {
			t.Errorf("epoch %d: get_info has zrs_epoch = %v", tc.want, has)
		}
		if got := infoEpoch(v); got != tc.want {
			t.Errorf("zrs_epoch = %d, want %d", got, tc.want)
		}
		if got := c.Epoch(); got != tc.want {
			t.Errorf("client epoch = %d, want %d", got, tc.want)
		}
	}
}

// TestLowerEpochRefused: once a client has seen epoch 2, a server of
// epoch 1 is refused, whether it is reached by Dial or by following the
// source; a server that reports no epoch (static mode) is not fenced by
// epoch.
func TestLowerEpochRefused(t *testing.T) {
	dir := t.TempDir()
	newer := startTestServer(t, filepath.Join(dir, "newer.fs"), 2)
	older := startTestServer(t, filepath.Join(dir, "older.fs"), 1)

	// A source that already knows epoch 2 fences at Dial.
	_, err := Dial(testCtx(t, 5*time.Second), "", Options{Source: newTestSource(2, older.addr)})
	var stale *StaleServerError
	if !errors.As(err, &stale) || stale.Epoch != 1 || stale.Seen != 2 || stale.Addr != older.addr || !errors.Is(err, ErrStaleServer) {
		t.Fatalf("dial of an epoch-1 server after epoch 2: %v", err)
	}

	// A client that saw epoch 2 from a server refuses to follow its
	// source to an epoch-1 server.
	var logs testlog.Buffer
	src := newTestSource(0, newer.addr)
	c := dialTest(t, Options{Source: src, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: testLogger(&logs)})
	if c.Epoch() != 2 {
		t.Fatalf("client epoch %d after connecting to an epoch-2 server", c.Epoch())
	}
	src.set(0, older.addr)
	waitFor(t, 2*time.Second, "the client did not try the epoch-1 server:\n"+logs.String(), func() bool {
		return strings.Contains(logs.String(), "epoch 1 is lower than epoch 2")
	})
	if got := c.ServerAddr(); got == older.addr {
		t.Fatal("the client connected to the epoch-1 server")
	}
	_, err = commitOne(testCtx(t, 300*time.Millisecond), c, 1, 0, "x")
	var nc *NotCommittedError
	if !errors.As(err, &nc) || nc.Stage != "connect" || !IsRetryable(err) {
		t.Fatalf("commit without an acceptable server: %v", err)
	}
	if older.store.LastTransaction() != 0 {
		t.Fatal("the epoch-1 server got a commit")
	}
	// Once the server is of the current epoch, it is accepted.
	older.svc.SetEpoch(2)
	if _, err := commitOne(testCtx(t, 5*time.Second), c, 1, 0, "x"); err != nil {
		t.Fatal(err)
	}
	if c.ServerAddr() != older.addr {
		t.Fatalf("connected to %q, want %s", c.ServerAddr(), older.addr)
	}
}

// TestOlderServerRefused: a server whose last transaction is older than
// one the client has seen lost data and is refused, unless
// AllowOlderServer.
func TestOlderServerRefused(t *testing.T) {
	dir := t.TempDir()
	full := startTestServer(t, filepath.Join(dir, "full.fs"), 0)
	empty := startTestServer(t, filepath.Join(dir, "empty.fs"), 0)
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow=%v", allow), func(t *testing.T) {
			var logs testlog.Buffer
			src := newTestSource(0, full.addr)
			c := dialTest(t, Options{Source: src, AllowOlderServer: allow, MinBackoff: 10 * time.Millisecond,
				MaxBackoff: 50 * time.Millisecond, Logger: testLogger(&logs)})
			var serial storage.Tid
			if _, s, err := c.Load(testCtx(t, 5*time.Second), 1); err == nil {
				serial = s
			}
			tid, err := commitOne(testCtx(t, 5*time.Second), c, 1, serial, "v")
			if err != nil {
				t.Fatal(err)
			}
			src.set(0, empty.addr)
			if !allow {
				waitFor(t, 2*time.Second, "the client did not refuse the older server", func() bool {
					return strings.Contains(logs.String(), "older than "+tid.String())
				})
				if c.ServerAddr() == empty.addr {
					t.Fatal("connected to a server that lost data")
				}
				return
			}
			waitFor(t, 2*time.Second, "the client did not move to the older server", func() bool {
				return c.ServerAddr() == empty.addr
			})
			if c.LastTransaction() != 0 || c.CachedObjects() != 0 {
				t.Fatalf("after accepting an empty server: last tid %s, %d cached objects", c.LastTransaction(), c.CachedObjects())
			}
			if _, _, err := c.Load(testCtx(t, 5*time.Second), 1); !errors.Is(err, storage.ErrNoObject) {
				t.Fatalf("load from the empty server: %v", err)
			}
		})
	}
}

// TestCommitOnDemotedServer: a server that accepted the client
// read-write and became read-only since refuses the commit with a
// retryable error that still says ReadOnly.
func TestCommitOnDemotedServer(t *testing.T) {
	srv := startTestServer(t, filepath.Join(t.TempDir(), "Data.fs"), 1)
	c := dialTest(t, Options{Source: StaticAddresses{srv.addr}})
	srv.svc.SetReadOnly(true)
	_, err := commitOne(testCtx(t, 5*time.Second), c, 1, 0, "x")
	var nc *NotCommittedError
	if !errors.As(err, &nc) || nc.Stage != "vote" || !errors.Is(err, ErrReadOnly) || !IsRetryable(err) {
		t.Fatalf("commit on a demoted server: %v", err)
	}
	if _, err := c.NewOids(testCtx(t, 5*time.Second), 1); !errors.Is(err, ErrReadOnly) || !IsRetryable(err) {
		t.Fatalf("new_oids on a demoted server: %v", err)
	}
	srv.svc.SetReadOnly(false)
	if _, err := commitOne(testCtx(t, 5*time.Second), c, 1, 0, "x"); err != nil {
		t.Fatalf("commit after promotion: %v", err)
	}
	// A client that is read-only by configuration gets a plain,
	// non-retryable ErrReadOnly.
	ro := dialTest(t, Options{Source: StaticAddresses{srv.addr}, ReadOnly: true})
	if _, err := commitOne(testCtx(t, 5*time.Second), ro, 2, 0, "y"); !errors.Is(err, ErrReadOnly) || IsRetryable(err) {
		t.Fatalf("commit through a read-only client: %v", err)
	}
}

// TestFollowsWatchingSource: a connected read-write client moves when
// its source names another primary, and reads and commits continue
// there; a commit or read made while it is between servers waits for the
// new one within its context.
func TestFollowsWatchingSource(t *testing.T) {
	dir := t.TempDir()
	a := startTestServer(t, filepath.Join(dir, "a.fs"), 1)
	src := newTestSource(1, a.addr)
	c := dialTest(t, Options{Source: src, CacheBytes: -1, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	tid, err := commitOne(testCtx(t, 5*time.Second), c, 1, 0, "on a")
	if err != nil {
		t.Fatal(err)
	}
	// b serves a's data (as a promoted secondary would) on another
	// address, at the next epoch.
	a.stop()
	b := startTestServer(t, filepath.Join(dir, "a.fs"), 2)

	// The read waits for the move and then succeeds.
	type result struct {
		data []byte
		err  error
	}
	read := make(chan result, 1)
	go func() {
		data, _, err := c.Load(testCtx(t, 5*time.Second), 1)
		read <- result{data, err}
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	src.set(2, b.addr)
	r := <-read
	if r.err != nil || string(r.data) != "on a" {
		t.Fatalf("read across the move: %q %v", r.data, r.err)
	}
	if _, err := commitOne(testCtx(t, 5*time.Second), c, 1, tid, "on b"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("moving took %s", took)
	}
	if c.ServerAddr() != b.addr || c.Epoch() != 2 {
		t.Fatalf("connected to %q at epoch %d, want %s at 2", c.ServerAddr(), c.Epoch(), b.addr)
	}
}
