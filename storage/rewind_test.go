package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// rwFixture is a fixture file with its transactions' tids and end offsets.
type rwFixture struct {
	name string
	data []byte
	tids []Tid
	ends []int64 // ends[k] is the end of transaction k
	oids []Oid   // every oid with a record
	txns []*TxnRecord
}

func rwLoadFixture(t *testing.T, name string) *rwFixture {
	t.Helper()
	f := &rwFixture{name: name, data: fxRead(t, name)}
	path := fxWrite(t, t.TempDir(), name, f.data)
	s, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f.txns = rwIterate(t, s)
	seen := make(map[Oid]bool)
	for i, rec := range f.txns {
		f.tids = append(f.tids, rec.Tid)
		end := int64(len(f.data))
		if i+1 < len(f.txns) {
			end = f.txns[i+1].Pos
		}
		f.ends = append(f.ends, end)
		for _, d := range rec.Records {
			if !seen[d.Oid] {
				seen[d.Oid] = true
				f.oids = append(f.oids, d.Oid)
			}
		}
	}
	return f
}

// cut returns tid of the k-th transaction (k ≥ 1; 0 for k = 0) and the
// offset where the file made of the first k transactions ends.
func (f *rwFixture) cut(k int) (Tid, int64) {
	if k == 0 {
		return 0, fileHeaderSize
	}
	return f.tids[k-1], f.ends[k-1]
}

func rwIterate(t *testing.T, s *FileStorage) []*TxnRecord {
	t.Helper()
	it, err := s.Iterate(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []*TxnRecord
	for {
		rec, err := it.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("iterate %s: %v", s.Path(), err)
		}
		out = append(out, rec)
	}
}

// rwState is everything a client can read from a storage.
type rwState struct {
	Last    Tid
	Size    int64
	Len     int
	Loads   []string
	Befores []string
	History []string
	Txns    []*TxnRecord
	Undo    []UndoEntry
}

// rwReadState reads the state of oids, with LoadBefore at each of befores.
func rwReadState(t *testing.T, s *FileStorage, oids []Oid, befores []Tid) *rwState {
	t.Helper()
	st := &rwState{Last: s.LastTransaction(), Size: s.Size(), Len: s.Len(), Txns: rwIterate(t, s)}
	for _, oid := range oids {
		data, serial, err := s.Load(oid)
		st.Loads = append(st.Loads, fmt.Sprintf("%s %x %s %v", oid, data, serial, err))
		h, err := s.History(oid, 100)
		st.History = append(st.History, fmt.Sprintf("%s %+v %v", oid, h, err))
		for _, b := range befores {
			rev, ok, err := s.LoadBefore(oid, b)
			st.Befores = append(st.Befores, fmt.Sprintf("%s<%s %x %s %s %v %v", oid, b, rev.Data, rev.Tid, rev.NextTid, ok, err))
		}
	}
	var err error
	if st.Undo, err = s.UndoLog(0, 1000); err != nil {
		t.Fatal(err)
	}
	return st
}

func (st *rwState) diff(want *rwState) string {
	if reflect.DeepEqual(st, want) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "last %s/%s size %d/%d len %d/%d txns %d/%d", st.Last, want.Last, st.Size, want.Size,
		st.Len, want.Len, len(st.Txns), len(want.Txns))
	for _, p := range []struct {
		what      string
		got, want []string
	}{{"load", st.Loads, want.Loads}, {"loadBefore", st.Befores, want.Befores}, {"history", st.History, want.History}} {
		for i := range min(len(p.got), len(p.want)) {
			if p.got[i] != p.want[i] {
				fmt.Fprintf(&b, "\n%s: got  %s\n%s: want %s", p.what, p.got[i], p.what, p.want[i])
				break
			}
		}
	}
	if !reflect.DeepEqual(st.Txns, want.Txns) {
		b.WriteString("\niteration differs")
	}
	if !reflect.DeepEqual(st.Undo, want.Undo) {
		b.WriteString("\nundo log differs")
	}
	return b.String()
}

// rwPrefix opens (read-only) a file made of the first k transactions of
// the fixture: what a rewind to the k-th transaction must be equivalent to.
func rwPrefix(t *testing.T, f *rwFixture, k int) *FileStorage {
	t.Helper()
	_, end := f.cut(k)
	p := fxWrite(t, t.TempDir(), "prefix.fs", f.data[:end])
	s, err := Open(p, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rwBefores picks the LoadBefore bounds to compare: every tid (and the
// one after it) for small fixtures, a sample around the cut for large ones.
func rwBefores(f *rwFixture, k int) []Tid {
	out := []Tid{MaxTid}
	for i, tid := range f.tids {
		if len(f.tids) > 40 && (i < k-2 || i > k+2) && i%50 != 0 {
			continue
		}
		out = append(out, tid, tid+1)
	}
	return out
}

// rwCheckSide checks that the side file is a sound FileStorage file whose
// transactions are exactly the fixture's transactions after the k-th.
func rwCheckSide(t *testing.T, f *rwFixture, k int, side string) {
	t.Helper()
	rep, err := Check(side)
	if err != nil {
		t.Fatalf("side file %s fails Check: %v", side, err)
	}
	if rep.Transactions != len(f.txns)-k {
		t.Fatalf("side file has %d transactions, want %d", rep.Transactions, len(f.txns)-k)
	}
	if err := Dump(io.Discard, side); err != nil {
		t.Fatalf("dump side file: %v", err)
	}
	s, err := Open(side, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := rwIterate(t, s)
	want := f.txns[k:]
	if len(got) != len(want) {
		t.Fatalf("side file iterates %d transactions, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !reflect.DeepEqual(g.TxnInfo, w.TxnInfo) || g.Status != w.Status || len(g.Records) != len(w.Records) {
			t.Fatalf("side file transaction %d: got %+v, want %+v", i, g.TxnInfo, w.TxnInfo)
		}
		for j := range w.Records {
			gr, wr := g.Records[j], w.Records[j]
			if gr.Oid != wr.Oid || gr.Tid != wr.Tid || !bytes.Equal(gr.Data, wr.Data) {
				t.Fatalf("side file transaction %s record %d: got oid %s tid %s %d bytes, want oid %s tid %s %d bytes",
					w.Tid, j, gr.Oid, gr.Tid, len(gr.Data), wr.Oid, wr.Tid, len(wr.Data))
			}
		}
	}
	if k < len(f.txns) && s.LastTransaction() != f.tids[len(f.tids)-1] {
		t.Fatalf("side file last tid %s", s.LastTransaction())
	}
}

// TestRewindFixtures rewinds a copy of each ZODB-made fixture to each
// transaction boundary and compares everything readable with a file made
// of just the transactions kept, before and after reopening, then checks
// the side file and that the storage commits soundly afterwards.
func TestRewindFixtures(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"basic.fs", "packed.fs", "packed.before.fs", "many.fs"} {
		t.Run(name, func(t *testing.T) {
			f := rwLoadFixture(t, name)
			n := len(f.txns)
			for k := 0; k <= n; k++ {
				if n > 40 && k%37 != 0 && k < n-3 && k > 3 {
					continue // a sample of the large fixture
				}
				to, end := f.cut(k)
				t.Run(fmt.Sprintf("keep%d", k), func(t *testing.T) {
					dir := t.TempDir()
					path := fxWrite(t, dir, "Data.fs", f.data)
					if fxExists(t, name+".index") {
						fxCopy(t, name+".index", dir, "Data.fs.index")
					}
					s, err := Open(path, Options{})
					if err != nil {
						t.Fatal(err)
					}
					defer func() { s.Close() }()
					res, err := s.Rewind(ctx, to)
					if err != nil {
						t.Fatalf("Rewind(%s): %v", to, err)
					}
					wantSide := path + ".diverged-" + to.String()
					if k == n {
						wantSide = ""
					}
					if res.Removed != n-k || res.LastTid != to || res.SideFile != wantSide || res.Bytes != int64(len(f.data))-end {
						t.Fatalf("result %+v; want %d removed, side file %q, last %s", res, n-k, wantSide, to)
					}
					if k < n && (res.FirstRemoved != f.tids[k] || res.LastRemoved != f.tids[n-1]) {
						t.Fatalf("result %+v: removed range", res)
					}
					if _, err := os.Stat(path + ".index"); k < n && !errors.Is(err, os.ErrNotExist) {
						t.Fatalf("stale index survived: %v", err)
					}
					if fi, err := os.Stat(path); err != nil || fi.Size() != end {
						t.Fatalf("data file size: %v %v, want %d", fi, err, end)
					}
					ref := rwPrefix(t, f, k)
					befores := rwBefores(f, k)
					want := rwReadState(t, ref, f.oids, befores)
					if d := rwReadState(t, s, f.oids, befores).diff(want); d != "" {
						t.Fatalf("after rewind: %s", d)
					}
					if k < n {
						rwCheckSide(t, f, k, res.SideFile)
					}

					// The oid allocator stays above every oid kept.
					oids, err := s.NewOids(1)
					if err != nil {
						t.Fatal(err)
					}
					if maxKept, ok := ref.idx.maxOid(); ok && oids[0] <= maxKept {
						t.Fatalf("new oid %s not above kept oid %s", oids[0], maxKept)
					}

					// Reopening (which saves and restores the .index)
					// gives the same state.
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					if s, err = Open(path, Options{}); err != nil {
						t.Fatal(err)
					}
					if d := rwReadState(t, s, f.oids, befores).diff(want); d != "" {
						t.Fatalf("after reopen: %s", d)
					}

					// A commit after the rewind is sound.
					txn, err := s.TpcBegin(ctx, TxnMeta{User: []byte("after rewind")})
					if err != nil {
						t.Fatal(err)
					}
					if err := txn.Store(oids[0], 0, []byte("new object")); err != nil {
						t.Fatal(err)
					}
					if len(f.oids) > 0 {
						if _, serial, err := s.Load(f.oids[0]); err == nil {
							if err := txn.Store(f.oids[0], serial, []byte("changed")); err != nil {
								t.Fatal(err)
							}
						}
					}
					if err := txn.TpcVote(); err != nil {
						t.Fatal(err)
					}
					tid, err := txn.TpcFinish()
					if err != nil {
						t.Fatal(err)
					}
					if tid <= to {
						t.Fatalf("new tid %s not after %s", tid, to)
					}
					all := append(append([]Oid(nil), f.oids...), oids[0])
					after := rwReadState(t, s, all, append(befores, tid))
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					if rep, err := Check(path); err != nil || rep.LastTid != tid {
						t.Fatalf("Check after commit: %+v %v", rep, err)
					}
					got, _ := os.ReadFile(path)
					if !bytes.Equal(got[:end], f.data[:end]) {
						t.Fatal("the kept transactions changed")
					}
					// Reopen without the index too: the scan agrees.
					os.Remove(path + ".index")
					if s, err = Open(path, Options{}); err != nil {
						t.Fatal(err)
					}
					if d := rwReadState(t, s, all, append(befores, tid)).diff(after); d != "" {
						t.Fatalf("after commit and reopen: %s", d)
					}
				})
			}
		})
	}
}

// TestRewindErrors covers every refusal: each leaves the file alone.
func TestRewindErrors(t *testing.T) {
	ctx := context.Background()
	f := rwLoadFixture(t, "basic.fs")
	open := func(t *testing.T, opts Options) (*FileStorage, string) {
		dir := t.TempDir()
		path := fxWrite(t, dir, "Data.fs", f.data)
		s, err := Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, path
	}
	unchanged := func(t *testing.T, s *FileStorage, path string) {
		t.Helper()
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, f.data) {
			t.Fatal("data file changed")
		}
		if s.LastTransaction() != f.tids[len(f.tids)-1] {
			t.Fatalf("last transaction %s", s.LastTransaction())
		}
		side, _ := filepath.Glob(path + ".diverged-*")
		if len(side) != 0 {
			t.Fatalf("side files left: %v", side)
		}
	}
	wantErr := func(t *testing.T, err error, to Tid, sentinel error) {
		t.Helper()
		var re *RewindError
		if !errors.As(err, &re) || re.To != to || !errors.Is(err, sentinel) {
			t.Fatalf("error %v (%T); want a *RewindError for %s wrapping %v", err, err, to, sentinel)
		}
	}
	mid := f.tids[5]

	t.Run("read-only", func(t *testing.T) {
		s, path := open(t, Options{ReadOnly: true})
		_, err := s.Rewind(ctx, mid)
		wantErr(t, err, mid, ErrReadOnly)
		unchanged(t, s, path)
	})
	t.Run("closed", func(t *testing.T) {
		s, _ := open(t, Options{})
		s.Close()
		_, err := s.Rewind(ctx, mid)
		wantErr(t, err, mid, ErrClosed)
	})
	t.Run("transaction in progress", func(t *testing.T) {
		s, path := open(t, Options{})
		txn, err := s.TpcBegin(ctx, TxnMeta{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Rewind(ctx, mid)
		wantErr(t, err, mid, ErrTransactionInProgress)
		txn.TpcAbort()
		unchanged(t, s, path)
		if _, err := s.Rewind(ctx, mid); err != nil {
			t.Fatalf("after abort: %v", err)
		}
	})
	t.Run("unknown tid", func(t *testing.T) {
		s, path := open(t, Options{})
		for _, to := range []Tid{mid + 1, f.tids[0] - 1, f.tids[len(f.tids)-1] + 1, MaxTid} {
			_, err := s.Rewind(ctx, to)
			wantErr(t, err, to, ErrNoTransaction)
		}
		unchanged(t, s, path)
	})
	t.Run("canceled", func(t *testing.T) {
		s, path := open(t, Options{})
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.Rewind(cctx, mid)
		wantErr(t, err, mid, context.Canceled)
		unchanged(t, s, path)
		if tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*tmp*")); len(tmp) != 0 {
			t.Fatalf("temporary files left: %v", tmp)
		}
	})
	t.Run("nothing to remove", func(t *testing.T) {
		s, path := open(t, Options{})
		last := f.tids[len(f.tids)-1]
		res, err := s.Rewind(ctx, last)
		if err != nil || res != (RewindResult{LastTid: last}) {
			t.Fatalf("Rewind(last) = %+v, %v", res, err)
		}
		unchanged(t, s, path)
	})
	t.Run("side file name taken", func(t *testing.T) {
		s, path := open(t, Options{})
		base := path + ".diverged-" + mid.String()
		for _, name := range []string{base, base + ".1"} {
			if err := os.WriteFile(name, []byte("an operator's file"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		res, err := s.Rewind(ctx, mid)
		if err != nil {
			t.Fatal(err)
		}
		if res.SideFile != base+".2" {
			t.Fatalf("side file %q, want %q", res.SideFile, base+".2")
		}
		for _, name := range []string{base, base + ".1"} {
			if b, _ := os.ReadFile(name); string(b) != "an operator's file" {
				t.Fatalf("%s was overwritten", name)
			}
		}
		rwCheckSide(t, f, 6, res.SideFile)
	})
	t.Run("failed step", func(t *testing.T) {
		// A step failing before the truncation leaves the old state,
		// after it the new one; either way the storage keeps working.
		for _, step := range []string{"side-file-written", "index-removed", "truncated"} {
			t.Run(step, func(t *testing.T) {
				s, path := open(t, Options{})
				boom := errors.New("boom")
				rewindHook = func(at string) error {
					if at == step {
						return boom
					}
					return nil
				}
				defer func() { rewindHook = nil }()
				_, err := s.Rewind(ctx, mid)
				wantErr(t, err, mid, boom)
				rewindHook = nil
				want := f.tids[len(f.tids)-1]
				if step == "truncated" {
					want = mid
				}
				if s.LastTransaction() != want {
					t.Fatalf("last transaction %s, want %s", s.LastTransaction(), want)
				}
				txn, err := s.TpcBegin(ctx, TxnMeta{})
				if err != nil {
					t.Fatal(err)
				}
				txn.TpcVote()
				if _, err := txn.TpcFinish(); err != nil {
					t.Fatal(err)
				}
				s.Close()
				if _, err := Check(path); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

// TestRewindCrash snapshots the directory at each step of a rewind, as a
// crash there would leave it, and checks that each snapshot opens as
// either the old or the rewound storage, with any side file complete.
func TestRewindCrash(t *testing.T) {
	ctx := context.Background()
	f := rwLoadFixture(t, "basic.fs")
	const k = 9
	to, _ := f.cut(k)
	dir := t.TempDir()
	path := fxWrite(t, dir, "Data.fs", f.data)
	fxCopy(t, "basic.fs.index", dir, "Data.fs.index")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snaps := map[string]string{}
	rewindHook = func(step string) error {
		snap := t.TempDir()
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Name() == "Data.fs.lock" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(snap, e.Name()), b, 0o644); err != nil {
				return err
			}
		}
		snaps[step] = snap
		return nil
	}
	defer func() { rewindHook = nil }()
	if _, err := s.Rewind(ctx, to); err != nil {
		t.Fatal(err)
	}
	rewindHook = nil

	befores := rwBefores(f, k)
	oldState := rwReadState(t, rwPrefix(t, f, len(f.txns)), f.oids, befores)
	newState := rwReadState(t, rwPrefix(t, f, k), f.oids, befores)
	for _, step := range []string{"side-file-written", "index-removed", "truncated"} {
		snap, ok := snaps[step]
		if !ok {
			t.Fatalf("no snapshot at %s", step)
		}
		c, err := Open(filepath.Join(snap, "Data.fs"), Options{})
		if err != nil {
			t.Fatalf("%s: reopen: %v", step, err)
		}
		got := rwReadState(t, c, f.oids, befores)
		c.Close()
		if got.diff(oldState) != "" && got.diff(newState) != "" {
			t.Fatalf("%s: reopened state is neither the old nor the rewound one: %s", step, got.diff(newState))
		}
		rwCheckSide(t, f, k, filepath.Join(snap, "Data.fs.diverged-"+to.String()))
	}
}

// TestRewindConcurrentReaders runs loads, histories and iterations while
// the storage rewinds: nothing may fault (the mapping is limited to the
// new end) and each load sees the old or the new state.
func TestRewindConcurrentReaders(t *testing.T) {
	f := rwLoadFixture(t, "basic.fs")
	path := fxWrite(t, t.TempDir(), "Data.fs", f.data)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const k = 4
	to, _ := f.cut(k)
	valid := map[string]bool{}
	for _, ref := range []*FileStorage{rwPrefix(t, f, len(f.txns)), rwPrefix(t, f, k)} {
		for _, oid := range f.oids {
			data, serial, err := ref.Load(oid)
			valid[fmt.Sprintf("%s %x %s %v", oid, data, serial, err)] = true
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, oid := range f.oids {
					data, serial, err := s.Load(oid)
					if r := fmt.Sprintf("%s %x %s %v", oid, data, serial, err); !valid[r] {
						mu.Lock()
						bad = append(bad, r)
						mu.Unlock()
					}
					s.LoadBefore(oid, MaxTid)
					s.History(oid, 10)
				}
				if it, err := s.Iterate(0, 0); err == nil {
					for {
						if _, err := it.Next(); err != nil {
							break
						}
					}
				}
			}
		}()
	}
	res, err := s.Rewind(context.Background(), to)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != len(f.txns)-k {
		t.Fatalf("removed %d", res.Removed)
	}
	if len(bad) > 0 {
		t.Fatalf("loads saw neither state: %v", bad[:min(3, len(bad))])
	}
}
