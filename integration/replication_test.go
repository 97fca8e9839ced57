package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/storage"
)

func TestMain(m *testing.M) { Main(m) }

// Bounds for the steps of the tests below.
const (
	catchUpTimeout = 60 * time.Second
	logTimeout     = 20 * time.Second
)

// largeTxns is the size of the "large" databases: big enough that a
// catch-up takes a few hundred milliseconds and many flush batches.
const largeTxns = 20000

// startPrimary starts a primary serving dataPath (created if missing).
func startPrimary(t *testing.T, name, dataPath string) *Node {
	t.Helper()
	return StartNode(t, Config{Name: name, DataPath: dataPath, ReplicateTo: FreeAddr(t)})
}

// testContext returns a context ending with the test or after d.
func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dialWriter connects a writable Go client to n that reconnects quickly.
func dialWriter(t *testing.T, ctx context.Context, n *Node) *client.Client {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.Dial(dctx, n.ZEOAddr, client.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("dial %s: %v", n.Name(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialReader connects a read-only Go client to n.
func dialReader(t *testing.T, ctx context.Context, n *Node, opts client.Options) *client.Client {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := n.Dial(dctx, opts)
	if err != nil {
		t.Fatalf("dial %s read-only: %v", n.Name(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// writerOid is the object the writer's i-th transaction creates, far
// above the oids FillDatabase uses.
func writerOid(i int) storage.Oid { return storage.Oid(1<<32 + i) }

func writerData(i int) []byte { return fmt.Appendf(nil, "writer object %d", i) }

// commitNew creates object oid holding data, retrying through lost
// connections and server restarts until ctx is done. An attempt whose
// outcome was unknown may have committed: the retry then conflicts (the
// object exists), and the object holding our data proves the commit.
// It returns the commit's tid and how many attempts failed.
func commitNew(ctx context.Context, c *client.Client, oid storage.Oid, data []byte) (storage.Tid, int, error) {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		txn := c.Begin(client.TxnMeta{User: "writer", Description: fmt.Sprintf("create %s", oid)})
		txn.Store(oid, 0, data)
		tid, err := txn.Commit(actx)
		cancel()
		if err == nil {
			return tid, attempt, nil
		}
		var ce *storage.ConflictError
		if errors.As(err, &ce) {
			if attempt == 0 {
				return 0, attempt, fmt.Errorf("commit %s: %w", oid, err)
			}
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			got, serial, lerr := c.Load(lctx, oid)
			cancel()
			if lerr != nil {
				return 0, attempt, fmt.Errorf("commit %s: conflict on retry, then load: %w", oid, lerr)
			}
			if !bytes.Equal(got, data) {
				return 0, attempt, fmt.Errorf("commit %s: conflict on retry and the object holds %q", oid, got)
			}
			return serial, attempt, nil
		}
		if ctx.Err() != nil {
			return 0, attempt, fmt.Errorf("commit %s: gave up: %w (last error %v)", oid, ctx.Err(), err)
		}
		// A server shutting down may answer with an error at once;
		// don't spin while it goes away.
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// writer commits new objects through a Go client in the background until
// told to stop.
type writer struct {
	c         *client.Client
	committed atomic.Int64
	retries   atomic.Int64
	stop      chan struct{}
	done      chan struct{}
	err       error
	tids      []storage.Tid // guarded by done
}

// startWriter starts a writer whose first transaction creates
// writerOid(first).
func startWriter(ctx context.Context, c *client.Client, first int) *writer {
	w := &writer{c: c, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := first; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			tid, retries, err := commitNew(ctx, c, writerOid(i), writerData(i))
			w.retries.Add(int64(retries))
			if err != nil {
				w.err = err
				return
			}
			w.tids = append(w.tids, tid)
			w.committed.Add(1)
		}
	}()
	return w
}

// waitCommitted waits until the writer has committed n transactions.
func (w *writer) waitCommitted(t *testing.T, n int64) {
	t.Helper()
	WaitFor(t, 30*time.Second, fmt.Sprintf("the writer to commit %d transactions", n), func() bool {
		select {
		case <-w.done:
			t.Fatalf("writer stopped after %d commits: %v", w.committed.Load(), w.err)
		default:
		}
		return w.committed.Load() >= n
	}, func() string { return fmt.Sprintf("%d committed", w.committed.Load()) })
}

// finish stops the writer and returns the tids it committed.
func (w *writer) finish(t *testing.T) []storage.Tid {
	t.Helper()
	close(w.stop)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatal("writer did not stop")
	}
	if w.err != nil {
		t.Fatalf("writer: %v", w.err)
	}
	for i := 1; i < len(w.tids); i++ {
		if w.tids[i] <= w.tids[i-1] {
			t.Fatalf("writer commit %d has tid %s, not after %s", i, w.tids[i], w.tids[i-1])
		}
	}
	return w.tids
}

// checkWriterObjects loads from n every object writers created, the i-th
// at tids[i].
func checkWriterObjects(t *testing.T, ctx context.Context, n *Node, tids []storage.Tid) {
	t.Helper()
	c := dialReader(t, ctx, n, client.Options{CacheBytes: -1})
	for i, tid := range tids {
		data, serial, err := c.Load(ctx, writerOid(i))
		if err != nil {
			t.Fatalf("%s: load writer object %d: %v", n.Name(), i, err)
		}
		if !bytes.Equal(data, writerData(i)) || serial != tid {
			t.Fatalf("%s: writer object %d is %q at %s, want %q at %s", n.Name(), i, data, serial, writerData(i), tid)
		}
	}
}

// primaryLast returns the primary's last tid, which no one else changes.
func primaryLast(t *testing.T, n *Node) storage.Tid {
	t.Helper()
	tid, err := n.LastTid(context.Background())
	if err != nil {
		t.Fatalf("%s: last transaction: %v", n.Name(), err)
	}
	return tid
}

// TestSecondaryKilledDuringCatchUp kills a new secondary twice in the
// middle of catching up with a large database and restarts it: each time
// it resumes from where its file ends (cutting any unfinished tail), and
// it ends byte-identical to the primary with a sound file.
func TestSecondaryKilledDuringCatchUp(t *testing.T) {
	primaryPath := filepath.Join(t.TempDir(), "primary.fs")
	last := FillDatabase(t, primaryPath, largeTxns, 1)
	primarySize := FileSize(primaryPath)
	primary := startPrimary(t, "p", primaryPath)
	sec := NewNode(t, Config{Name: "s", ReplicateFrom: primary.Config.ReplicateTo})

	sec.Start()
	for i, fraction := range []float64{0.25, 0.6} {
		// The file grows as the secondary applies transactions: kill it
		// as soon as it passes the fraction of the primary's size.
		threshold := int64(fraction * float64(primarySize))
		deadline := time.Now().Add(catchUpTimeout)
		for FileSize(sec.DataPath()) < threshold {
			if time.Now().After(deadline) {
				t.Fatalf("secondary's file did not reach %d bytes within %s (at %d)", threshold, catchUpTimeout, FileSize(sec.DataPath()))
			}
			if !sec.Running() {
				t.Fatal("secondary exited during catch-up")
			}
			time.Sleep(200 * time.Microsecond)
		}
		sec.Kill()
		size := FileSize(sec.DataPath())
		at, err := FileLastTid(sec.DataPath())
		if err != nil {
			t.Fatalf("kill #%d: the killed secondary's file does not open: %v", i+1, err)
		}
		t.Logf("kill #%d at %d of %d bytes, last tid %s of %s", i+1, size, primarySize, at, last)
		if size >= primarySize || at >= last {
			t.Fatalf("kill #%d: the secondary had already caught up (%d of %d bytes, tid %s); the database is too small to kill it mid-way",
				i+1, size, primarySize, at)
		}
		sec.Start()
		// It resumes from its own last transaction, not from scratch.
		want := fmt.Sprintf("start=%s", at)
		WaitFor(t, logTimeout, "the restarted secondary to resume from "+at.String(), func() bool {
			return len(sec.LogLines("replicating", "start=")) == i+2
		})
		if lines := sec.LogLines("replicating", "start="); !strings.Contains(lines[i+1], want) {
			t.Fatalf("restart #%d: secondary did not resume from %s:\n%s", i+1, at, lines[i+1])
		}
	}
	sec.WaitTid(last, catchUpTimeout)
	// What clients see is in the file (read-only opens work while the
	// node runs).
	WaitFileTid(t, sec.DataPath(), last, logTimeout)
	sec.Stop()
	primary.Stop()
	SameFile(t, primaryPath, sec.DataPath())
	Verify(t, sec.DataPath())
}

// TestPrimaryRestartWhileWriting restarts the primary (SIGTERM, then
// start on the same ports) while a writer commits through the Go client
// with retries: the writer loses nothing, the secondary reconnects by
// itself and ends byte-identical to the primary.
func TestPrimaryRestartWhileWriting(t *testing.T) {
	ctx := testContext(t, 90*time.Second)
	primary := startPrimary(t, "p", "")
	sec := StartNode(t, Config{Name: "s", ReplicateFrom: primary.Config.ReplicateTo})

	w := startWriter(ctx, dialWriter(t, ctx, primary), 0)
	w.waitCommitted(t, 30)
	primary.Stop()
	before := w.committed.Load()
	primary.Start()
	// Commits continue through the restarted primary.
	w.waitCommitted(t, before+30)
	tids := w.finish(t)
	t.Logf("writer: %d commits, %d retried attempts, %d before the restart", len(tids), w.retries.Load(), before)

	last := primaryLast(t, primary)
	if last != tids[len(tids)-1] {
		t.Fatalf("primary's last tid %s is not the writer's last commit %s", last, tids[len(tids)-1])
	}
	sec.WaitTid(last, catchUpTimeout)
	if len(sec.LogLines("replication connection lost; retrying")) == 0 {
		t.Fatal("the secondary never noticed the primary going away")
	}
	if n := len(sec.LogLines("zrs.replica: replicating:")); n < 2 {
		t.Fatalf("the secondary started %d replication sessions, want at least 2", n)
	}
	checkWriterObjects(t, ctx, sec, tids)
	sec.Stop()
	primary.Stop()
	SameFile(t, primary.DataPath(), sec.DataPath())
}

// TestNewSecondaryJoinsLargeDatabase starts an empty secondary of a large
// database while a writer keeps committing: its read-only clients see
// transactions in order while it catches up, and it ends byte-identical.
func TestNewSecondaryJoinsLargeDatabase(t *testing.T) {
	ctx := testContext(t, 90*time.Second)
	primaryPath := filepath.Join(t.TempDir(), "primary.fs")
	filled := FillDatabase(t, primaryPath, largeTxns, 2)
	primary := startPrimary(t, "p", primaryPath)
	w := startWriter(ctx, dialWriter(t, ctx, primary), 0)
	w.waitCommitted(t, 10)

	sec := StartNode(t, Config{Name: "s", ReplicateFrom: primary.Config.ReplicateTo})
	var mu sync.Mutex
	var seen []storage.Tid
	var disorder error
	dialReader(t, ctx, sec, client.Options{OnInvalidate: func(inv client.Invalidation) {
		mu.Lock()
		defer mu.Unlock()
		if n := len(seen); n > 0 && inv.Tid <= seen[n-1] && disorder == nil {
			disorder = fmt.Errorf("invalidation %s after %s", inv.Tid, seen[n-1])
		}
		seen = append(seen, inv.Tid)
	}})
	before := w.committed.Load()
	w.waitCommitted(t, before+50)
	tids := w.finish(t)
	last := primaryLast(t, primary)
	if last != tids[len(tids)-1] || last <= filled {
		t.Fatalf("primary's last tid %s: writer's last %s, filled up to %s", last, tids[len(tids)-1], filled)
	}
	sec.WaitTid(last, catchUpTimeout)
	WaitFor(t, logTimeout, "the secondary's client to see the last commit", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) > 0 && seen[len(seen)-1] == last
	})
	mu.Lock()
	if disorder != nil {
		t.Fatal(disorder)
	}
	t.Logf("%d writer commits; the secondary's client saw %d invalidations", len(tids), len(seen))
	mu.Unlock()
	if lines := sec.LogLines("replicating", "start=0000000000000000"); len(lines) != 1 {
		t.Fatalf("want one session starting from an empty file, got %q", lines)
	}
	checkWriterObjects(t, ctx, sec, tids)
	sec.Stop()
	primary.Stop()
	SameFile(t, primaryPath, sec.DataPath())
}

// TestCascadeInvalidations runs primary → s1 → s2 with read-only Go
// clients on s2: each commit on the primary reaches them as one
// invalidation with its tid and objects, in commit order.
func TestCascadeInvalidations(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	primary := startPrimary(t, "p", "")
	s1 := StartNode(t, Config{Name: "s1", ReplicateFrom: primary.Config.ReplicateTo, ReplicateTo: FreeAddr(t)})
	s2 := StartNode(t, Config{Name: "s2", ReplicateFrom: s1.Config.ReplicateTo})

	type reader struct {
		mu   sync.Mutex
		invs []client.Invalidation
		c    *client.Client
	}
	readers := make([]*reader, 2)
	for i := range readers {
		r := &reader{}
		r.c = dialReader(t, ctx, s2, client.Options{OnInvalidate: func(inv client.Invalidation) {
			r.mu.Lock()
			r.invs = append(r.invs, inv)
			r.mu.Unlock()
		}})
		readers[i] = r
	}
	// Readers cache an object, so that its invalidation matters.
	const objects = 5
	wc := dialWriter(t, ctx, primary)
	type commit struct {
		tid  storage.Tid
		oids []storage.Oid
	}
	var commits []commit
	serials := make(map[storage.Oid]storage.Tid)
	for i := range 40 {
		oids := []storage.Oid{storage.Oid(i % objects), storage.Oid(objects + i)}
		txn := wc.Begin(client.TxnMeta{User: "u", Description: fmt.Sprintf("commit %d", i)})
		for _, oid := range oids {
			txn.Store(oid, serials[oid], fmt.Appendf(nil, "%d@%d", oid, i))
		}
		tid, err := txn.Commit(ctx)
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		for _, oid := range oids {
			serials[oid] = tid
		}
		commits = append(commits, commit{tid, oids})
		if i == 10 {
			// Cache object 0 on the readers mid-way.
			s2.WaitTid(tid, catchUpTimeout)
			for _, r := range readers {
				if _, _, err := r.c.Load(ctx, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	last := commits[len(commits)-1].tid
	s1.WaitTid(last, catchUpTimeout)
	s2.WaitTid(last, catchUpTimeout)
	for i, r := range readers {
		WaitFor(t, logTimeout, fmt.Sprintf("reader %d on s2 to be told of the last commit", i), func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return len(r.invs) > 0 && r.invs[len(r.invs)-1].Tid == last
		})
		r.mu.Lock()
		invs := r.invs
		r.mu.Unlock()
		if len(invs) != len(commits) {
			t.Fatalf("reader %d on s2 got %d invalidations for %d commits", i, len(invs), len(commits))
		}
		for j, inv := range invs {
			want := commits[j]
			if inv.Tid != want.tid || fmt.Sprint(inv.Oids) != fmt.Sprint(want.oids) {
				t.Fatalf("reader %d invalidation %d: %s %v, want %s %v", i, j, inv.Tid, inv.Oids, want.tid, want.oids)
			}
		}
		// The invalidated object loads at its newest revision.
		data, serial, err := r.c.Load(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if serial != serials[0] || string(data) != "0@35" {
			t.Fatalf("reader %d: object 0 is %q at %s, want %q at %s", i, data, serial, "0@35", serials[0])
		}
	}
	s2.Stop()
	s1.Stop()
	primary.Stop()
	SameFile(t, primary.DataPath(), s1.DataPath())
	SameFile(t, primary.DataPath(), s2.DataPath())
}

// TestSecondaryAheadStops: in static mode a secondary holding a
// transaction its primary lacks logs an ERROR saying so, leaves its data
// file untouched and keeps serving reads.
func TestSecondaryAheadStops(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	dir := t.TempDir()
	primaryPath := filepath.Join(dir, "primary.fs")
	primaryLastTid := FillDatabase(t, primaryPath, 200, 3)
	secPath := filepath.Join(dir, "secondary.fs")
	CopyFile(t, primaryPath, secPath)
	// One more transaction, only on the secondary.
	extraOid := storage.Oid(1 << 40)
	s, err := storage.Open(secPath, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	txn, err := s.TpcBegin(ctx, storage.TxnMeta{Description: []byte("only on the secondary")})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(extraOid, 0, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := txn.TpcVote(); err != nil {
		t.Fatal(err)
	}
	secLast, err := txn.TpcFinish()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, secPath)

	primary := startPrimary(t, "p", primaryPath)
	sec := StartNode(t, Config{Name: "s", DataPath: secPath, ReplicateFrom: primary.Config.ReplicateTo})
	line := sec.WaitLog(logTimeout, "[ERROR]", "replication stopped")
	for _, want := range []string{"newer than upstream", secLast.String(), primaryLastTid.String()} {
		if !strings.Contains(line, want) {
			t.Errorf("the ERROR line does not mention %q:\n%s", want, line)
		}
	}
	primary.WaitLog(logTimeout, "not streaming to secondary", "answer=")
	if !bytes.Equal(readFile(t, secPath), before) {
		t.Fatal("the stopped secondary changed its data file")
	}
	// It still serves reads, including its own extra transaction.
	if !sec.Running() {
		t.Fatal("the secondary exited after stopping replication")
	}
	c := dialReader(t, ctx, sec, client.Options{})
	if got := c.LastTransaction(); got != secLast {
		t.Fatalf("secondary serves last tid %s, want its own %s", got, secLast)
	}
	data, serial, err := c.Load(ctx, extraOid)
	if err != nil || string(data) != "mine" || serial != secLast {
		t.Fatalf("load from the stopped secondary: %q at %s, %v", data, serial, err)
	}
	sec.Stop()
	primary.Stop()
	if !bytes.Equal(readFile(t, secPath), before) {
		t.Fatal("the stopped secondary changed its data file")
	}
	// In static mode it does not try again by itself.
	if n := len(sec.LogLines("replication stopped")); n != 1 {
		t.Fatalf("the secondary logged %d stops, want 1", n)
	}
}

// TestZRS20SecondaryOfOurPrimary replicates with protocol "zrs2.0" (the
// stock zc.zrs protocol) from our primary, which serves it on the same
// port as its own: the secondary catches up, follows live commits,
// resumes after a restart and ends byte-identical.
func TestZRS20SecondaryOfOurPrimary(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	primaryPath := filepath.Join(t.TempDir(), "primary.fs")
	FillDatabase(t, primaryPath, 2000, 4)
	primary := startPrimary(t, "p", primaryPath)
	sec := StartNode(t, Config{Name: "s20", ReplicateFrom: primary.Config.ReplicateTo, Protocol: "zrs2.0"})
	// One of our own secondaries on the same port at the same time.
	ours := StartNode(t, Config{Name: "s", ReplicateFrom: primary.Config.ReplicateTo})

	wc := dialWriter(t, ctx, primary)
	w := startWriter(ctx, wc, 0)
	w.waitCommitted(t, 20)
	tids := w.finish(t)
	last := primaryLast(t, primary)
	sec.WaitTid(last, catchUpTimeout)

	// Restarted, it resumes from its last transaction, catching up with
	// what was committed while it was down and following what comes after.
	sec.Stop()
	w = startWriter(ctx, wc, len(tids))
	w.waitCommitted(t, 20)
	sec.Start()
	w.waitCommitted(t, 40)
	tids = append(tids, w.finish(t)...)
	last = primaryLast(t, primary)
	if last != tids[len(tids)-1] {
		t.Fatalf("primary's last tid %s is not the writers' last commit %s", last, tids[len(tids)-1])
	}
	sec.WaitTid(last, catchUpTimeout)
	ours.WaitTid(last, catchUpTimeout)
	if n := len(sec.LogLines("replicating from zc.zrs primary")); n != 2 {
		t.Fatalf("want 2 zrs2.0 sessions, the log shows %d", n)
	}
	if lines := sec.LogLines("replicating from zc.zrs primary", "start=0000000000000000"); len(lines) != 1 {
		t.Fatalf("want only the first session to start from scratch, got %q", lines)
	}
	if n := len(primary.LogLines("zrs2.0 secondary connected")); n != 2 {
		t.Fatalf("the primary logged %d zrs2.0 secondaries, want 2", n)
	}
	checkWriterObjects(t, ctx, sec, tids)
	sec.Stop()
	ours.Stop()
	primary.Stop()
	SameFile(t, primaryPath, sec.DataPath())
	SameFile(t, primaryPath, ours.DataPath())
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
