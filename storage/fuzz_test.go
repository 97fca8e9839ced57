package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Fuzz targets for the parsing paths that see untrusted bytes: the data
// file at open, one transaction record, and the .index file.
//
//	go test -run '^$' -fuzz FuzzOpen -fuzztime 60s ./storage/
//	go test -run '^$' -fuzz FuzzParseTxn -fuzztime 60s ./storage/
//	go test -run '^$' -fuzz FuzzReadIndexFile -fuzztime 60s ./storage/
//
// Inputs that fail are written to testdata/fuzz/NAME/ and replayed by every
// later `go test`. FuzzOpen's seeds are whole fixture files (up to 300 KB)
// and each run does several fsyncs, so minimizing a new interesting input
// with the default -fuzzminimizetime (60s) can stall the workers for the
// whole run; add -fuzzminimizetime 20x, and TMPDIR=/dev/shm makes the
// fsyncs cheap.

// fuzzWatchdog crashes the process with every goroutine's stack when the
// input being fuzzed runs for too long: Go's fuzzer has no time limit of
// its own, so a hang would only stall a worker. The crash makes the fuzzer
// save the input. Call the returned function when done.
func fuzzWatchdog() func() bool {
	timer := time.AfterFunc(20*time.Second, func() {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		panic(fmt.Sprintf("fuzz input still running after 20s:\n%s", buf[:n]))
	})
	return timer.Stop
}

// fuzzFixture reads a fixture written by ZODB; a missing one fails the test.
func fuzzFixture(f *testing.F, name string) []byte {
	f.Helper()
	b, err := os.ReadFile(filepath.Join(crashFixtureDir, name))
	if err != nil {
		f.Fatalf("fixture missing: %v", err)
	}
	return b
}

// fuzzSmallStorage builds a small file with the engine: new objects, an
// update, a deletion and a restore that writes a backpointer. It returns
// the data file and its .index.
func fuzzSmallStorage(f *testing.F) (data, idx []byte) {
	f.Helper()
	path := filepath.Join(f.TempDir(), "small.fs")
	s, err := Open(path, Options{})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	commit := func(fn func(t *Txn) error) Tid {
		t, err := s.TpcBegin(ctx, TxnMeta{User: []byte("fuzz"), Description: []byte("seed")})
		if err != nil {
			f.Fatal(err)
		}
		if err := fn(t); err != nil {
			f.Fatal(err)
		}
		if err := t.TpcVote(); err != nil {
			f.Fatal(err)
		}
		tid, err := t.TpcFinish()
		if err != nil {
			f.Fatal(err)
		}
		return tid
	}
	oids, err := s.NewOids(2)
	if err != nil {
		f.Fatal(err)
	}
	first := []byte("first revision")
	tid1 := commit(func(t *Txn) error {
		if err := t.Store(oids[0], 0, first); err != nil {
			return err
		}
		return t.Store(oids[1], 0, []byte("second object"))
	})
	tid2 := commit(func(t *Txn) error {
		if err := t.Store(oids[0], tid1, []byte("second revision")); err != nil {
			return err
		}
		return t.DeleteObject(oids[1], tid1)
	})
	_ = tid2
	commit(func(t *Txn) error { return t.Restore(oids[0], t.Tid(), first, tid1) })
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	if data, err = os.ReadFile(path); err != nil {
		f.Fatal(err)
	}
	if idx, err = os.ReadFile(path + ".index"); err != nil {
		f.Fatal(err)
	}
	return data, idx
}

// fuzzTxnEnds returns the end offsets of the transactions of a sound file.
func fuzzTxnEnds(data []byte) []int {
	var ends []int
	for pos := fileHeaderSize; pos+TxnHeaderSize <= len(data); {
		tlen := binary.BigEndian.Uint64(data[pos+8:])
		if tlen > uint64(len(data)) {
			break
		}
		pos += int(tlen) + trailerSize
		if pos > len(data) {
			break
		}
		ends = append(ends, pos)
	}
	return ends
}

func FuzzOpen(f *testing.F) {
	basic := fuzzFixture(f, "basic.fs")
	basicIdx := fuzzFixture(f, "basic.fs.index")
	small, smallIdx := fuzzSmallStorage(f)

	f.Add(basic, basicIdx, true)
	f.Add(basic, basicIdx, false)
	f.Add(fuzzFixture(f, "many.fs"), fuzzFixture(f, "many.fs.index"), true)
	f.Add(fuzzFixture(f, "packed.fs"), []byte(nil), false)
	f.Add(fuzzFixture(f, "packed.before.fs"), []byte(nil), false)
	for _, name := range []string{"garbage-appended.fs", "status-c-last-txn.fs", "tlen-corrupt-middle.fs", "truncated-last-txn.fs"} {
		f.Add(fuzzFixture(f, "tail/"+name), basicIdx, true)
		f.Add(fuzzFixture(f, "tail/"+name), []byte(nil), false)
	}
	f.Add(small, smallIdx, true)
	f.Add(small, smallIdx, false)
	f.Add([]byte{}, []byte(nil), false)
	f.Add([]byte("FS30"), []byte(nil), false)
	f.Add([]byte("FS21"), []byte(nil), false)
	f.Add([]byte("FS3"), []byte(nil), false)
	// Truncated prefixes: at transaction boundaries and inside transactions.
	for _, src := range [][]byte{small, basic} {
		ends := fuzzTxnEnds(src)
		for i, end := range ends {
			if i > 4 && i < len(ends)-2 {
				continue
			}
			f.Add(src[:end], []byte(nil), false)
			f.Add(src[:end-1], []byte(nil), false)
			if end+TxnHeaderSize+5 < len(src) {
				f.Add(src[:end+5], []byte(nil), false)
				f.Add(src[:end+TxnHeaderSize+5], []byte(nil), false)
			}
		}
	}
	// Tail variants of the small file: status 'c', 'u' and an unknown one
	// on its last transaction, a broken trailer, garbage appended, and the
	// index of the whole file next to a shorter one.
	ends := fuzzTxnEnds(small)
	lastPos := ends[len(ends)-2]
	for _, status := range []byte{StatusCheckpoint, StatusUndone, StatusPacked, 'x'} {
		v := append([]byte(nil), small...)
		v[lastPos+16] = status
		f.Add(v, []byte(nil), false)
		f.Add(v, smallIdx, true)
	}
	v := append([]byte(nil), small...)
	v[len(v)-1] ^= 0xff
	f.Add(v, []byte(nil), false)
	f.Add(append(append([]byte(nil), small...), bytes.Repeat([]byte{0xab}, 40)...), []byte(nil), false)
	f.Add(small[:lastPos], smallIdx, true)

	f.Fuzz(func(t *testing.T, data, idx []byte, withIndex bool) {
		if len(data) > 1<<20 || len(idx) > 1<<20 {
			return
		}
		defer fuzzWatchdog()()
		path := filepath.Join(t.TempDir(), "Data.fs")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if withIndex {
			if err := os.WriteFile(path+".index", idx, 0o644); err != nil {
				t.Fatal(err)
			}
		}

		if s, err := Open(path, Options{ReadOnly: true}); err == nil {
			fuzzExercise(t, s)
			if err := s.Close(); err != nil {
				t.Fatalf("close read-only: %v", err)
			}
		}
		if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, data) {
			t.Fatalf("a read-only open changed the data file (%v)", err)
		}

		s, err := Open(path, Options{})
		if err != nil {
			return
		}
		fuzzExercise(t, s)

		// A storage that opened read-write takes a commit, which a
		// re-open finds.
		last := s.LastTransaction()
		oid, tid := fuzzCommit(t, s)
		if tid <= last {
			t.Errorf("commit got tid %s, not after the last tid %s", tid, last)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if s, err = Open(path, Options{}); err != nil {
			t.Fatalf("re-open after a commit: %v", err)
		}
		defer s.Close()
		if got := s.LastTransaction(); got != tid {
			t.Errorf("re-open: last tid %s, want the commit's %s", got, tid)
		}
		data2, serial, err := s.Load(oid)
		if err != nil || serial != tid || string(data2) != "fuzz commit" {
			t.Errorf("re-open: Load(%s) = %q, %s, %v; want the committed data at %s", oid, data2, serial, err, tid)
		}
		fuzzExercise(t, s)
	})
}

// fuzzCommit commits one new object.
func fuzzCommit(t *testing.T, s *FileStorage) (Oid, Tid) {
	t.Helper()
	oids, err := s.NewOids(1)
	if err != nil {
		t.Fatalf("new oid: %v", err)
	}
	txn, err := s.TpcBegin(context.Background(), TxnMeta{Description: []byte("fuzz")})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if err := txn.Store(oids[0], 0, []byte("fuzz commit")); err != nil {
		txn.TpcAbort()
		t.Fatalf("store of new oid %s: %v", oids[0], err)
	}
	if err := txn.TpcVote(); err != nil {
		txn.TpcAbort()
		t.Fatalf("vote: %v", err)
	}
	tid, err := txn.TpcFinish()
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	return oids[0], tid
}

// fuzzExercise calls every read operation on everything the storage
// indexes. Errors are fine (the data may be damaged beyond what open
// checks); panics and endless loops are not.
func fuzzExercise(t *testing.T, s *FileStorage) {
	t.Helper()
	size := s.Size()
	it, err := s.Iterate(0, 0)
	if err == nil {
		for n := int64(0); ; n++ {
			if n > size/(TxnHeaderSize+trailerSize)+1 {
				t.Fatalf("iterator yielded %d transactions from a %d-byte file", n, size)
			}
			rec, err := it.Next()
			if err != nil {
				break
			}
			if rec.Pos < fileHeaderSize || rec.Pos >= size {
				t.Fatalf("iterated transaction at %d outside the file [4, %d)", rec.Pos, size)
			}
		}
	}
	if last := s.LastTransaction(); last != 0 {
		if it, err := s.Iterate(last, last); err == nil {
			it.Next()
		}
	}
	s.UndoLog(0, 20)

	n := s.Len()
	if n == 0 {
		return
	}
	from := Oid(0)
	for i := 0; ; i++ {
		if i > n {
			t.Fatalf("RecordIterNext went through more than the %d oids indexed", n)
		}
		oid, _, _, next, more, err := s.RecordIterNext(from)
		if err != nil && oid == 0 && !more && i > 0 {
			t.Fatalf("RecordIterNext(%s) found nothing though the previous call said it exists: %v", from, err)
		}
		_, serial, lerr := s.Load(oid)
		s.LoadBefore(oid, MaxTid)
		if lerr == nil {
			s.LoadBefore(oid, serial)
			s.LoadSerial(oid, serial)
		}
		s.History(oid, 10)
		if !more {
			break
		}
		if next <= oid {
			t.Fatalf("RecordIterNext(%s): next oid %s is not after %s", from, next, oid)
		}
		from = next
	}
}

func FuzzParseTxn(f *testing.F) {
	for _, name := range []string{"basic.fs", "packed.fs"} {
		data := fuzzFixture(f, name)
		pos := fileHeaderSize
		for _, end := range fuzzTxnEnds(data) {
			f.Add(data[pos:end], uint64(pos))
			pos = end
		}
	}
	small, _ := fuzzSmallStorage(f)
	pos := fileHeaderSize
	for _, end := range fuzzTxnEnds(small) {
		f.Add(small[pos:end], uint64(pos))
		pos = end
	}
	f.Add([]byte{}, uint64(4))
	f.Add(make([]byte, TxnHeaderSize+trailerSize), uint64(4))

	f.Fuzz(func(t *testing.T, raw []byte, upos uint64) {
		defer fuzzWatchdog()()
		pos := int64(fileHeaderSize + upos%(maxOffset-fileHeaderSize))
		size := pos + int64(len(raw))
		var h TxnHeader
		reason := "short"
		if len(raw) >= TxnHeaderSize {
			h = decodeTxnHeader(raw)
			reason = checkTxnHeader(&h, pos, size)
			var b [TxnHeaderSize]byte
			h.encode(b[:])
			if !bytes.Equal(b[:], raw[:TxnHeaderSize]) {
				t.Fatalf("transaction header does not round-trip: % x -> % x", raw[:TxnHeaderSize], b)
			}
		}
		if len(raw) >= DataHeaderSize {
			d := decodeDataHeader(raw)
			var b [DataHeaderSize]byte
			d.encode(b[:])
			if !bytes.Equal(b[:], raw[:DataHeaderSize]) {
				t.Fatalf("data header does not round-trip: % x -> % x", raw[:DataHeaderSize], b)
			}
			d.checkInTxn(pos, pos, size)
		}

		next := int64(-1)
		v, err := parseTxn("fuzz", pos, raw, func(rpos int64, dh *DataHeader, payload []byte) error {
			if next < 0 {
				next = pos + int64(h.metaLen())
			}
			if rpos != next {
				t.Fatalf("record at %d, want it at %d", rpos, next)
			}
			if r := dh.checkInTxn(rpos, pos, pos+int64(h.Len)); r != "" {
				t.Fatalf("record at %d passed to fn although %s", rpos, r)
			}
			if want := dh.recordLen() - DataHeaderSize; int64(len(payload)) != want {
				t.Fatalf("record at %d: payload of %d bytes, want %d", rpos, len(payload), want)
			}
			if o := rpos - pos; !bytes.Equal(payload, raw[o+DataHeaderSize:o+dh.recordLen()]) {
				t.Fatalf("record at %d: payload is not the record's bytes", rpos)
			}
			next = rpos + dh.recordLen()
			return nil
		})
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("parseTxn error %T is not a *FormatError: %v", err, err)
			}
			if fe.Offset < pos || fe.Offset > size {
				t.Fatalf("parseTxn error offset %d outside the record [%d, %d]: %v", fe.Offset, pos, size, err)
			}
			return
		}
		if reason != "" {
			t.Fatalf("parseTxn accepted a transaction whose header check says %q", reason)
		}
		if v.pos != pos || v.hdr != h || v.end() != size {
			t.Fatalf("txnView pos %d end %d header %+v; want pos %d end %d header %+v", v.pos, v.end(), v.hdr, pos, size, h)
		}
		meta := append(append(append([]byte(nil), v.user()...), v.description()...), v.extension()...)
		if !bytes.Equal(meta, raw[TxnHeaderSize:h.metaLen()]) {
			t.Fatal("user, description and extension are not the bytes after the header")
		}
		switch {
		case h.Status == StatusUndone && next >= 0:
			t.Fatal("records of an undone transaction were passed to fn")
		case h.Status != StatusUndone && next >= 0 && next != pos+int64(h.Len):
			t.Fatalf("records end at %d, the transaction at %d", next, pos+int64(h.Len))
		case h.Status != StatusUndone && next < 0 && h.metaLen() != h.Len:
			t.Fatalf("no records, but %d bytes between the metadata and the trailer", h.Len-h.metaLen())
		}
	})
}

func FuzzReadIndexFile(f *testing.F) {
	basicIdx := fuzzFixture(f, "basic.fs.index")
	f.Add(basicIdx)
	f.Add(fuzzFixture(f, "many.fs.index"))
	_, smallIdx := fuzzSmallStorage(f)
	f.Add(smallIdx)
	// The worked example of the spec (A.16).
	f.Add([]byte("\x80\x03K\xa6.\x80\x03C\x06\x00\x00\x00\x00\x00\x00C\x08\x00\x00\x00\x00\x00\x00\x00\x34\x86.\x80\x03N."))
	// Legacy dict form, an index without the closing None, garbage.
	f.Add([]byte("\x80\x03}q\x00(X\x03\x00\x00\x00posq\x01K\xa6X\x05\x00\x00\x00indexq\x02}q\x03u."))
	f.Add(basicIdx[:len(basicIdx)-4])
	f.Add(basicIdx[:len(basicIdx)/2])
	f.Add([]byte{})
	f.Add([]byte("\x80\x03N."))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		defer fuzzWatchdog()()
		dir := t.TempDir()
		path := filepath.Join(dir, "Data.fs.index")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ix, pos, err := readIndexFile(path)
		if err != nil {
			if ix != nil {
				t.Fatal("readIndexFile returned an index with an error")
			}
			return
		}
		entries := fuzzCheckIndex(t, ix)

		// What was read writes back and reads back the same.
		path2 := filepath.Join(dir, "copy.index")
		if err := writeIndexFile(path2, ix, pos); err != nil {
			t.Fatalf("write back: %v", err)
		}
		ix2, pos2, err := readIndexFile(path2)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		if pos2 != pos {
			t.Fatalf("read back position %d, want %d", pos2, pos)
		}
		entries2 := fuzzCheckIndex(t, ix2)
		if len(entries2) != len(entries) {
			t.Fatalf("read back %d oids, want %d", len(entries2), len(entries))
		}
		for i := range entries {
			if entries[i] != entries2[i] {
				t.Fatalf("read back entry %d: %+v, want %+v", i, entries2[i], entries[i])
			}
		}
	})
}

// fuzzCheckIndex checks the invariants of an index and returns its entries.
func fuzzCheckIndex(t *testing.T, ix *index) []crashIndexEntry {
	t.Helper()
	var entries []crashIndexEntry
	ix.each(func(oid Oid, pos int64) bool {
		entries = append(entries, crashIndexEntry{oid, pos})
		return true
	})
	if len(entries) != ix.len() {
		t.Fatalf("index iterates %d oids, len() says %d", len(entries), ix.len())
	}
	for i, e := range entries {
		if i > 0 && e.oid <= entries[i-1].oid {
			t.Fatalf("index oids out of order: %s after %s", e.oid, entries[i-1].oid)
		}
		if e.pos < 0 || e.pos > maxOffset {
			t.Fatalf("oid %s: offset %d outside 48 bits", e.oid, e.pos)
		}
		if pos, ok := ix.get(e.oid); !ok || pos != e.pos {
			t.Fatalf("get(%s) = %d, %v; want %d", e.oid, pos, ok, e.pos)
		}
		if oid, pos, ok := ix.next(e.oid); !ok || oid != e.oid || pos != e.pos {
			t.Fatalf("next(%s) = %s, %d, %v", e.oid, oid, pos, ok)
		}
		if i > 0 && entries[i-1].oid+1 < e.oid {
			if oid, _, ok := ix.next(entries[i-1].oid + 1); !ok || oid != e.oid {
				t.Fatalf("next(%s) = %s, %v; want %s", entries[i-1].oid+1, oid, ok, e.oid)
			}
		}
	}
	if len(entries) > 0 {
		if m, ok := ix.maxOid(); !ok || m != entries[len(entries)-1].oid {
			t.Fatalf("maxOid() = %s, %v; want %s", m, ok, entries[len(entries)-1].oid)
		}
		if _, _, ok := ix.next(entries[len(entries)-1].oid + 1); ok && entries[len(entries)-1].oid != ^Oid(0) {
			t.Fatal("next() past the largest oid found one")
		}
	}
	return entries
}
