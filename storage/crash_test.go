package storage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crashFixtureDir holds the fixtures written by real ZODB.
const crashFixtureDir = "../../shared/fixtures/filestorage"

// crashTxn is what the crash tests compare of one iterated transaction.
type crashTxn struct {
	tid     Tid
	pos     int64
	status  byte
	records []DataRecord
}

// crashIterate iterates the whole storage.
func crashIterate(s *FileStorage) ([]crashTxn, error) {
	it, err := s.Iterate(0, 0)
	if err != nil {
		return nil, err
	}
	var out []crashTxn
	for {
		rec, err := it.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, crashTxn{tid: rec.Tid, pos: rec.Pos, status: rec.Status, records: rec.Records})
	}
}

// crashCompareTxns checks that got equals want transaction by transaction.
func crashCompareTxns(got, want []crashTxn) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d transactions, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := &got[i], &want[i]
		if g.tid != w.tid || g.pos != w.pos || g.status != w.status || len(g.records) != len(w.records) {
			return fmt.Errorf("transaction %d: tid %s pos %d status %q %d records, want tid %s pos %d status %q %d records",
				i, g.tid, g.pos, g.status, len(g.records), w.tid, w.pos, w.status, len(w.records))
		}
		for j := range w.records {
			gr, wr := &g.records[j], &w.records[j]
			if gr.Oid != wr.Oid || gr.Tid != wr.Tid || gr.Pos != wr.Pos || gr.Prev != wr.Prev ||
				gr.Back != wr.Back || gr.DataTxn != wr.DataTxn || !bytes.Equal(gr.Data, wr.Data) ||
				(gr.Data == nil) != (wr.Data == nil) {
				return fmt.Errorf("transaction %s record %d (oid %s at %d) differs", w.tid, j, wr.Oid, wr.Pos)
			}
		}
	}
	return nil
}

// crashObject is one RecordIterNext result.
type crashObject struct {
	oid     Oid
	tid     Tid
	data    []byte
	deleted bool
}

// crashObjects walks every object with RecordIterNext.
func crashObjects(s *FileStorage) ([]crashObject, error) {
	var out []crashObject
	if s.Len() == 0 {
		return nil, nil
	}
	from := Oid(0)
	for i := 0; i <= s.Len(); i++ {
		oid, tid, data, next, more, err := s.RecordIterNext(from)
		o := crashObject{oid: oid, tid: tid, data: data}
		if err != nil {
			var nf *NoObjectError
			if !errors.As(err, &nf) || !nf.Deleted {
				return out, fmt.Errorf("RecordIterNext(%s): %w", from, err)
			}
			o.deleted = true
		}
		out = append(out, o)
		if !more {
			return out, nil
		}
		if next <= oid {
			return out, fmt.Errorf("RecordIterNext(%s): next oid %s is not after %s", from, next, oid)
		}
		from = next
	}
	return out, fmt.Errorf("RecordIterNext did not stop after %d objects", s.Len())
}

func crashCompareObjects(got, want []crashObject) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d objects, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := &got[i], &want[i]
		if g.oid != w.oid || g.tid != w.tid || g.deleted != w.deleted || !bytes.Equal(g.data, w.data) {
			return fmt.Errorf("object %s: serial %s deleted %v (%d bytes), want serial %s deleted %v (%d bytes)",
				w.oid, g.tid, g.deleted, len(g.data), w.tid, w.deleted, len(w.data))
		}
	}
	return nil
}

// crashState is the observable state of a storage the tests compare.
type crashState struct {
	last    Tid
	size    int64
	txns    []crashTxn
	index   []crashIndexEntry
	objects []crashObject // only when read withObjects
}

type crashIndexEntry struct {
	oid Oid
	pos int64
}

// crashReadState reads the state of s: its last tid, size, every
// transaction, its index and, withObjects, every object's current data.
func crashReadState(s *FileStorage, withObjects bool) (crashState, error) {
	st := crashState{last: s.LastTransaction(), size: s.Size()}
	s.mu.RLock()
	st.index = make([]crashIndexEntry, 0, s.idx.len())
	s.idx.each(func(oid Oid, pos int64) bool {
		st.index = append(st.index, crashIndexEntry{oid, pos})
		return true
	})
	s.mu.RUnlock()
	var err error
	if st.txns, err = crashIterate(s); err != nil {
		return st, fmt.Errorf("iterate: %w", err)
	}
	if withObjects {
		if st.objects, err = crashObjects(s); err != nil {
			return st, err
		}
	}
	return st, nil
}

// check compares st with want, which must have been read withObjects.
func (st *crashState) check(want *crashState) error {
	if st.last != want.last {
		return fmt.Errorf("LastTransaction %s, want %s", st.last, want.last)
	}
	if st.size != want.size {
		return fmt.Errorf("Size %d, want %d", st.size, want.size)
	}
	if len(st.index) != len(want.index) {
		return fmt.Errorf("index holds %d oids, want %d", len(st.index), len(want.index))
	}
	for i := range want.index {
		if st.index[i] != want.index[i] {
			return fmt.Errorf("index entry %d: oid %s at %d, want oid %s at %d",
				i, st.index[i].oid, st.index[i].pos, want.index[i].oid, want.index[i].pos)
		}
	}
	if err := crashCompareTxns(st.txns, want.txns); err != nil {
		return err
	}
	if st.objects != nil {
		return crashCompareObjects(st.objects, want.objects)
	}
	return nil
}

// crashRemoveAll removes the data file and every auxiliary file of it;
// with keepData, only the auxiliary files (.index, .trN, ...).
func crashRemoveAll(path string, keepData bool) error {
	matches, err := filepath.Glob(path + "*")
	if err != nil {
		return err
	}
	for _, m := range matches {
		if keepData && (m == path || m == path+".lock") {
			continue
		}
		if err := os.Remove(m); err != nil {
			return err
		}
	}
	return nil
}

// TestCrashTruncateEveryOffset cuts a copy of each fixture at every byte
// offset inside its last transaction, as a crash during the append of that
// transaction would, and checks that a read-write open (without .index)
// recovers exactly the state before the last transaction.
func TestCrashTruncateEveryOffset(t *testing.T) {
	for _, name := range []string{"basic.fs", "many.fs"} {
		t.Run(name, func(t *testing.T) {
			orig, err := os.ReadFile(filepath.Join(crashFixtureDir, name))
			if err != nil {
				t.Fatalf("fixture missing: %v", err)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "Data.fs")

			// Reference: the whole original, read-only.
			if err := os.WriteFile(path, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			full, err := crashReadState(s, true)
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			n := len(full.txns)
			if n < 2 || full.size != int64(len(orig)) {
				t.Fatalf("reference: %d transactions, size %d of %d", n, full.size, len(orig))
			}
			lastPos := full.txns[n-1].pos

			// Reference: the file cut just before its last transaction,
			// read-only, which must be what every cut recovers.
			if err := crashRemoveAll(path, false); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, orig[:lastPos], 0o644); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(path, Options{ReadOnly: true}); err != nil {
				t.Fatal(err)
			}
			want, err := crashReadState(s, true)
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			if err := crashCompareTxns(want.txns, full.txns[:n-1]); err != nil {
				t.Fatalf("prefix reference: %v", err)
			}
			if want.last != full.txns[n-2].tid || want.size != lastPos {
				t.Fatalf("prefix reference: last %s size %d, want %s %d", want.last, want.size, full.txns[n-2].tid, lastPos)
			}

			// The cuts are shared out among a few workers (the test waits on
			// fsyncs more than it computes), each with its own directory.
			// A worker appends the cut part of the last transaction to the
			// prefix, which is already on disk (and checked after every
			// recovery), instead of rewriting the whole file.
			const workers = 8
			start := time.Now()
			errc := make(chan error, workers)
			for w := 0; w < workers; w++ {
				wpath := filepath.Join(t.TempDir(), "Data.fs")
				go func() {
					errc <- func() error {
						if err := os.WriteFile(wpath, orig[:lastPos], 0o644); err != nil {
							return err
						}
						if err := crashSync(wpath); err != nil {
							return err
						}
						readBack := make([]byte, lastPos)
						for cut := lastPos + int64(w); cut < int64(len(orig)); cut += workers {
							if err := crashCheckCut(wpath, orig, cut, lastPos, &want, readBack); err != nil {
								return fmt.Errorf("cut at %d (last transaction at %d, file %d bytes): %w", cut, lastPos, len(orig), err)
							}
						}
						return nil
					}()
				}()
			}
			for w := 0; w < workers; w++ {
				if err := <-errc; err != nil {
					t.Error(err)
				}
			}
			t.Logf("%s: %d cuts in [%d, %d) checked in %v", name, int64(len(orig))-lastPos, lastPos, len(orig), time.Since(start))
		})
	}
}

// crashSync fsyncs the file at path.
func crashSync(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// crashCheckCut makes the file at path hold orig[:cut], given that it
// holds orig[:lastPos], recovers it with a read-write open and checks the
// result against want.
func crashCheckCut(path string, orig []byte, cut, lastPos int64, want *crashState, readBack []byte) error {
	if err := crashRemoveAll(path, true); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(orig[lastPos:cut], lastPos)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != cut {
		return fmt.Errorf("could not prepare the cut file: %v", err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	// Loading every object and re-opening read-write (which writes and
	// fsyncs) are the slow parts: they are done for a sample of cuts.
	// Everything else is checked for every cut.
	sample := cut%16 == 0 || cut-lastPos < 2*TxnHeaderSize
	got, err := crashReadState(s, sample)
	if err == nil {
		err = got.check(want)
	}
	if cerr := s.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("after recovery: %w", err)
	}

	// The file itself is cut at the last transaction; a tail holding a
	// whole transaction header is saved to NAME.tr0 (ZODB's _truncate),
	// a shorter one is dropped.
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() != lastPos {
		return fmt.Errorf("data file is %d bytes after recovery, want %d", fi.Size(), lastPos)
	}
	if err := crashReadFile(path, readBack[:lastPos]); err != nil {
		return err
	}
	if i := crashFirstDiff(readBack[:lastPos], orig[:lastPos]); i >= 0 {
		return fmt.Errorf("recovery changed byte %d of the sound part of the file", i)
	}
	tr, err := os.ReadFile(path + ".tr0")
	switch {
	case cut-lastPos >= TxnHeaderSize:
		if err != nil {
			return fmt.Errorf("saved tail: %w", err)
		}
		if !bytes.Equal(tr, orig[lastPos:cut]) {
			return fmt.Errorf("%s.tr0 holds %d bytes, not the %d cut off", path, len(tr), cut-lastPos)
		}
	case err == nil:
		return fmt.Errorf("%s.tr0 written for a %d-byte partial header", path, cut-lastPos)
	}

	// A full re-open, alternately with the .index the recovery wrote and
	// without any; read-only except for the sampled cuts.
	if cut%2 == 1 {
		if err := os.Remove(path + ".index"); err != nil {
			return err
		}
	}
	if s, err = Open(path, Options{ReadOnly: !sample}); err != nil {
		return fmt.Errorf("re-open: %w", err)
	}
	got, err = crashReadState(s, sample)
	if err == nil {
		err = got.check(want)
	}
	if cerr := s.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("after re-open: %w", err)
	}
	return nil
}

func crashReadFile(path string, buf []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.ReadFull(f, buf)
	return err
}

func crashFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// The child committer of TestCrashKillDuringCommits is this test binary
// re-executed with these variables set.
const (
	crashChildDirEnv   = "ZRS_CRASH_CHILD_DIR"
	crashChildRoundEnv = "ZRS_CRASH_CHILD_ROUND"
	crashChildSeedEnv  = "ZRS_CRASH_CHILD_SEED"
)

// crashHotOid is updated by every transaction of the child; the other two
// objects of each transaction are new.
const crashHotOid Oid = 0

func crashChildData(round, counter int, oid Oid, hot bool) []byte {
	if hot {
		return []byte(fmt.Sprintf("hot r%d c%d", round, counter))
	}
	return []byte(fmt.Sprintf("new r%d c%d oid %d %s", round, counter, oid, strings.Repeat("x", counter%50)))
}

// TestCrashChildCommitter is the child process of TestCrashKillDuringCommits;
// run directly (without the environment marker) it does nothing. It commits
// transactions in a loop and prints "COMMIT tid round counter oid1 oid2"
// after each TpcFinish returns, until it is killed.
func TestCrashChildCommitter(t *testing.T) {
	dir := os.Getenv(crashChildDirEnv)
	if dir == "" {
		return // not a child
	}
	fail := func(format string, args ...any) {
		fmt.Printf("ERROR "+format+"\n", args...)
		os.Exit(3)
	}
	round, _ := strconv.Atoi(os.Getenv(crashChildRoundEnv))
	seed, _ := strconv.ParseInt(os.Getenv(crashChildSeedEnv), 10, 64)
	rng := rand.New(rand.NewSource(seed))
	s, err := Open(filepath.Join(dir, "Data.fs"), Options{})
	if err != nil {
		fail("open: %v", err)
	}
	var serial Tid
	if _, serial, err = s.Load(crashHotOid); err != nil && !errors.Is(err, ErrNoObject) {
		fail("load hot object: %v", err)
	}
	fmt.Println("READY")
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second) // in case nobody kills us
	for counter := 0; time.Now().Before(deadline); counter++ {
		oids, err := s.NewOids(2)
		if err != nil {
			fail("new oids: %v", err)
		}
		txn, err := s.TpcBegin(ctx, TxnMeta{Description: []byte(fmt.Sprintf("round %d commit %d", round, counter))})
		if err != nil {
			fail("begin: %v", err)
		}
		if err := txn.Store(crashHotOid, serial, crashChildData(round, counter, crashHotOid, true)); err != nil {
			fail("store: %v", err)
		}
		for _, oid := range oids {
			if err := txn.Store(oid, 0, crashChildData(round, counter, oid, false)); err != nil {
				fail("store: %v", err)
			}
		}
		if err := txn.TpcVote(); err != nil {
			fail("vote: %v", err)
		}
		// Widen the window between vote and finish a little, as a
		// two-phase-commit coordinator would, so that some kills leave a
		// voted ('c') transaction behind.
		if d := rng.Intn(1500); d < 1000 {
			time.Sleep(time.Duration(d) * time.Microsecond)
		}
		tid, err := txn.TpcFinish()
		if err != nil {
			fail("finish: %v", err)
		}
		serial = tid
		// One write system call per line: a kill never leaves half a line.
		if _, err := fmt.Fprintf(os.Stdout, "COMMIT %s %d %d %d %d\n", tid, round, counter, oids[0], oids[1]); err != nil {
			os.Exit(4)
		}
	}
	fmt.Println("DEADLINE")
	os.Exit(5)
}

// crashCommit is one commit the child reported.
type crashCommit struct {
	tid            Tid
	round, counter int
	oids           [2]Oid
}

func parseCrashCommit(line string) (crashCommit, error) {
	var c crashCommit
	var tid string
	_, err := fmt.Sscanf(line, "COMMIT %s %d %d %d %d", &tid, &c.round, &c.counter, &c.oids[0], &c.oids[1])
	if err == nil {
		c.tid, err = ParseTid(tid)
	}
	return c, err
}

// TestCrashKillDuringCommits runs a child process that commits in a loop,
// kills it with SIGKILL at random moments, and checks after each kill that
// the storage opens and holds every transaction the child saw committed.
func TestCrashKillDuringCommits(t *testing.T) {
	seed := time.Now().UnixNano()
	if v := os.Getenv("ZRS_CRASH_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (set ZRS_CRASH_SEED to repeat)", seed)
	rng := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")

	const rounds = 5
	var reported []crashCommit
	for round := 0; round < rounds; round++ {
		delay := time.Duration(20+rng.Intn(181)) * time.Millisecond
		lines, stderr, err := crashRunChild(t, dir, round, rng.Int63(), delay)
		if err != nil {
			t.Fatalf("round %d: %v\nchild stderr:\n%s", round, err, stderr)
		}
		before := len(reported)
		for _, line := range lines {
			switch {
			case line == "READY":
			case strings.HasPrefix(line, "COMMIT "):
				c, err := parseCrashCommit(line)
				if err != nil {
					t.Fatalf("round %d: bad line %q: %v", round, line, err)
				}
				reported = append(reported, c)
			default:
				t.Fatalf("round %d: child said %q\nchild stderr:\n%s", round, line, stderr)
			}
		}
		trs, _ := filepath.Glob(path + ".tr*")
		t.Logf("round %d: killed after %v, %d commits reported", round, delay, len(reported)-before)

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: open after kill: %v", round, err)
		}
		err = crashCheckCommits(s, reported)
		trsAfter, _ := filepath.Glob(path + ".tr*")
		if len(trsAfter) > len(trs) {
			t.Logf("round %d: open cut an interrupted commit off (%s)", round, trsAfter[len(trsAfter)-1])
		}
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if len(reported) == 0 {
		t.Fatal("the child never reported a commit")
	}
}

// crashRunChild starts the committer, lets it run for delay after it has
// opened the storage, kills it with SIGKILL and returns its output lines.
func crashRunChild(t *testing.T, dir string, round int, seed int64, delay time.Duration) ([]string, string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChildCommitter$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashChildDirEnv+"="+dir,
		crashChildRoundEnv+"="+strconv.Itoa(round),
		crashChildSeedEnv+"="+strconv.FormatInt(seed, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	linec := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			linec <- sc.Text()
		}
		close(linec)
	}()
	var lines []string
	ready := false
	timeout := time.After(20 * time.Second)
	for !ready {
		select {
		case line, ok := <-linec:
			if !ok {
				err := cmd.Wait()
				return lines, stderr.String(), fmt.Errorf("child exited before it was ready (%v): %q", err, lines)
			}
			lines = append(lines, line)
			ready = line == "READY"
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			return lines, stderr.String(), errors.New("child not ready after 20s")
		}
	}
	time.Sleep(delay)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		return lines, stderr.String(), err
	}
	for line := range linec {
		lines = append(lines, line)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		tail := lines[max(0, len(lines)-5):]
		return lines, stderr.String(), fmt.Errorf("child did not die of the kill: %v; its last lines: %q", err, tail)
	}
	return lines, stderr.String(), nil
}

// crashCheckCommits checks the storage against the commits the child
// reported: each is present with its data, and the file iterates cleanly.
func crashCheckCommits(s *FileStorage, reported []crashCommit) error {
	txns, err := crashIterate(s)
	if err != nil {
		return fmt.Errorf("iterate: %w", err)
	}
	byTid := make(map[Tid]*crashTxn, len(txns))
	for i := range txns {
		if i > 0 && txns[i].tid <= txns[i-1].tid {
			return fmt.Errorf("tid %s at %d does not follow %s", txns[i].tid, txns[i].pos, txns[i-1].tid)
		}
		if txns[i].status != StatusCommitted {
			return fmt.Errorf("transaction %s has status %q", txns[i].tid, txns[i].status)
		}
		byTid[txns[i].tid] = &txns[i]
	}
	for _, c := range reported {
		txn := byTid[c.tid]
		if txn == nil {
			return fmt.Errorf("reported commit %s (round %d, counter %d) is missing", c.tid, c.round, c.counter)
		}
		want := map[Oid][]byte{
			crashHotOid: crashChildData(c.round, c.counter, crashHotOid, true),
			c.oids[0]:   crashChildData(c.round, c.counter, c.oids[0], false),
			c.oids[1]:   crashChildData(c.round, c.counter, c.oids[1], false),
		}
		if len(txn.records) != len(want) {
			return fmt.Errorf("commit %s has %d records, want %d", c.tid, len(txn.records), len(want))
		}
		for _, r := range txn.records {
			if w, ok := want[r.Oid]; !ok || !bytes.Equal(r.Data, w) || r.Tid != c.tid {
				return fmt.Errorf("commit %s: unexpected record for oid %s: %q", c.tid, r.Oid, r.Data)
			}
		}
		for oid, w := range want {
			data, err := s.LoadSerial(oid, c.tid)
			if err != nil {
				return fmt.Errorf("LoadSerial(%s, %s): %w", oid, c.tid, err)
			}
			if !bytes.Equal(data, w) {
				return fmt.Errorf("LoadSerial(%s, %s) = %q, want %q", oid, c.tid, data, w)
			}
		}
	}
	if n := len(reported); n > 0 {
		last := reported[n-1].tid
		if lt := s.LastTransaction(); lt < last {
			return fmt.Errorf("LastTransaction %s is before the last reported commit %s", lt, last)
		}
		if _, serial, err := s.Load(crashHotOid); err != nil || serial < last {
			return fmt.Errorf("hot object: serial %s, error %v; last reported commit %s", serial, err, last)
		}
	}
	if len(txns) > 0 && s.LastTransaction() != txns[len(txns)-1].tid {
		return fmt.Errorf("LastTransaction %s, last iterated %s", s.LastTransaction(), txns[len(txns)-1].tid)
	}
	if _, err := crashObjects(s); err != nil {
		return err
	}
	return nil
}
