package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"
)

// The benchmarks below produce the figures of the project's closing note:
//
//	go test ./storage/ -run '^$' -bench .
//
// Large inputs are built once per process into benchDir, which TestMain
// removes. This is the package's only TestMain.

var (
	benchDirOnce sync.Once
	benchDirPath string
	benchDirErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDirPath != "" {
		os.RemoveAll(benchDirPath)
	}
	os.Exit(code)
}

// benchDir returns the process-wide scratch directory for benchmark inputs.
func benchDir(b *testing.B) string {
	b.Helper()
	benchDirOnce.Do(func() {
		benchDirPath, benchDirErr = os.MkdirTemp("", "zrs-storage-bench-")
	})
	if benchDirErr != nil {
		b.Fatal(benchDirErr)
	}
	return benchDirPath
}

// benchFile is a storage file built once per process.
type benchFile struct {
	once  sync.Once
	path  string
	oids  []Oid // every oid stored, in storage order
	size  int64
	build time.Duration
	err   error
}

var (
	bench100k benchFile // 100 transactions x 1000 objects of 100 bytes
	bench1M   benchFile // 1000 transactions x 1000 objects of 20 bytes
)

// get builds the file on first use: ntxn transactions of perTxn new objects
// each, committed through the normal API (one fsync per transaction), then
// closed so that NAME.index is written.
func (f *benchFile) get(b *testing.B, name string, ntxn, perTxn, dataLen int) *benchFile {
	b.Helper()
	dir := benchDir(b)
	f.once.Do(func() {
		start := time.Now()
		f.path = filepath.Join(dir, name)
		f.oids, f.err = buildBenchStorage(f.path, ntxn, perTxn, dataLen)
		if f.err == nil {
			var fi os.FileInfo
			if fi, f.err = os.Stat(f.path); f.err == nil {
				f.size = fi.Size()
			}
		}
		f.build = time.Since(start)
	})
	if f.err != nil {
		b.Fatalf("build %s: %v", name, f.err)
	}
	return f
}

// benchData returns dataLen bytes derived from oid and the revision n.
func benchData(buf []byte, oid Oid, n int) []byte {
	for i := range buf {
		buf[i] = byte(uint64(oid)>>(8*(i%8)) + uint64(n) + uint64(i))
	}
	return buf
}

func buildBenchStorage(path string, ntxn, perTxn, dataLen int) ([]Oid, error) {
	s, err := Open(path, Options{})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	all := make([]Oid, 0, ntxn*perTxn)
	buf := make([]byte, dataLen)
	for i := 0; i < ntxn; i++ {
		oids, err := s.NewOids(perTxn)
		if err != nil {
			s.Close()
			return nil, err
		}
		t, err := s.TpcBegin(ctx, TxnMeta{Description: []byte(fmt.Sprintf("bench %d", i))})
		if err != nil {
			s.Close()
			return nil, err
		}
		for _, oid := range oids {
			if err := t.Store(oid, 0, benchData(buf, oid, 0)); err != nil {
				t.TpcAbort()
				s.Close()
				return nil, err
			}
		}
		if err := t.TpcVote(); err != nil {
			t.TpcAbort()
			s.Close()
			return nil, err
		}
		if _, err := t.TpcFinish(); err != nil {
			s.Close()
			return nil, err
		}
		all = append(all, oids...)
	}
	if err := s.Close(); err != nil {
		return nil, err
	}
	return all, nil
}

// commitRecordBytes is what one commit of one object of dataLen bytes with
// empty transaction metadata appends to the file.
func commitRecordBytes(dataLen int) int {
	return TxnHeaderSize + DataHeaderSize + dataLen + trailerSize
}

var commitFsyncNs struct {
	sync.Mutex
	storage, bare float64
}

// BenchmarkCommitFsync measures a whole commit of one 100-byte object
// (TpcBegin, Store, TpcVote, TpcFinish with its fsync) against a bare
// append of the same number of bytes plus fsync on a file in the same
// kind of directory. "bare" runs second and reports the ratio of the two
// ns/op figures as the metric storage/bare.
func BenchmarkCommitFsync(b *testing.B) {
	const dataLen = 100
	nbytes := commitRecordBytes(dataLen)

	b.Run("storage", func(b *testing.B) {
		dir := b.TempDir()
		s, err := Open(filepath.Join(dir, "Data.fs"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		oids, err := s.NewOids(1)
		if err != nil {
			b.Fatal(err)
		}
		oid := oids[0]
		data := make([]byte, dataLen)
		var serial Tid
		startSize := s.Size()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t, err := s.TpcBegin(ctx, TxnMeta{})
			if err != nil {
				b.Fatal(err)
			}
			binary.BigEndian.PutUint64(data, uint64(i))
			if err := t.Store(oid, serial, data); err != nil {
				b.Fatal(err)
			}
			if err := t.TpcVote(); err != nil {
				b.Fatal(err)
			}
			if serial, err = t.TpcFinish(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		grown := float64(s.Size()-startSize) / float64(b.N)
		if int(grown) != nbytes {
			b.Fatalf("file grew %.1f bytes per commit, want %d", grown, nbytes)
		}
		b.SetBytes(int64(nbytes))
		b.ReportMetric(grown, "file-B/op")
		ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		commitFsyncNs.Lock()
		commitFsyncNs.storage = ns
		commitFsyncNs.Unlock()
	})

	b.Run("bare", func(b *testing.B) {
		dir := b.TempDir()
		f, err := os.OpenFile(filepath.Join(dir, "bare"), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, nbytes)
		off := int64(4)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			binary.BigEndian.PutUint64(buf, uint64(i))
			if _, err := f.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
			off += int64(nbytes)
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.SetBytes(int64(nbytes))
		b.ReportMetric(float64(nbytes), "file-B/op")
		ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		commitFsyncNs.Lock()
		commitFsyncNs.bare = ns
		if commitFsyncNs.storage > 0 {
			b.ReportMetric(commitFsyncNs.storage/ns, "storage/bare")
		}
		commitFsyncNs.Unlock()
	})
}

// BenchmarkLoadBeforeCurrent loads current revisions of 100k objects in a
// random (precomputed) order with LoadBefore(oid, MaxTid), one goroutine.
func BenchmarkLoadBeforeCurrent(b *testing.B) {
	f := bench100k.get(b, "load100k.fs", 100, 1000, 100)
	s, err := Open(f.path, Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	order := append([]Oid(nil), f.oids...)
	rand.New(rand.NewSource(1)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	// Warm the page cache and check the data once, outside the timed loop.
	want := make([]byte, 100)
	for _, oid := range order {
		rev, ok, err := s.LoadBefore(oid, MaxTid)
		if err != nil || !ok || rev.NextTid != 0 || string(rev.Data) != string(benchData(want, oid, 0)) {
			b.Fatalf("LoadBefore(%s): ok=%v err=%v", oid, ok, err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := s.LoadBefore(order[i%len(order)], MaxTid); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkOpenWithIndex opens (read-write) a 1M-object file whose .index
// is valid. Close, which rewrites the .index, is not timed.
func BenchmarkOpenWithIndex(b *testing.B) {
	f := bench1M.get(b, "open1M.fs", 1000, 1000, 20)
	if b.N == 1 {
		b.Logf("1M-object file: %d bytes, built in %v", f.size, f.build)
	}
	ensureBenchIndex(b, f)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(f.path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n := s.Len(); n != len(f.oids) {
			b.Fatalf("Len %d, want %d", n, len(f.oids))
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// ensureBenchIndex makes sure f's .index exists (a failed benchmark run may
// have left it deleted).
func ensureBenchIndex(b *testing.B, f *benchFile) {
	b.Helper()
	if _, err := os.Stat(f.path + ".index"); err == nil {
		return
	}
	s, err := Open(f.path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRebuildScan opens the 1M-object file without its .index, so the
// whole file is scanned and the index rebuilt: "readwrite" also writes the
// new .index (as Open does), "readonly" only scans. SetBytes is the file
// size, so MB/s is the scan rate.
func BenchmarkRebuildScan(b *testing.B) {
	f := bench1M.get(b, "open1M.fs", 1000, 1000, 20)
	for _, ro := range []bool{false, true} {
		name := "readwrite"
		if ro {
			name = "readonly"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(f.size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if err := os.Remove(f.path + ".index"); err != nil && !os.IsNotExist(err) {
					b.Fatal(err)
				}
				b.StartTimer()
				s, err := Open(f.path, Options{ReadOnly: ro})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if n := s.Len(); n != len(f.oids) {
					b.Fatalf("Len %d, want %d", n, len(f.oids))
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			ensureBenchIndex(b, f)
		})
	}
}

// BenchmarkIndexMemory fills the in-memory index with 1M oids and reports
// its size: B/object from index.memoryBytes and heap-B/object from the
// measured heap growth.
//
//   - sequential: oids 1..n in order (how ZODB allocates them);
//   - sparse: n distinct oids drawn from [0, 16n), inserted in random order;
//   - random64-sorted: n random 64-bit oids inserted in ascending order (as
//     loading a .index does), the worst case for the bucket layout.
func BenchmarkIndexMemory(b *testing.B) {
	const n = 1 << 20
	patterns := []struct {
		name string
		oids func() []Oid
	}{
		{"sequential", func() []Oid {
			oids := make([]Oid, n)
			for i := range oids {
				oids[i] = Oid(i + 1)
			}
			return oids
		}},
		{"sparse", func() []Oid {
			rng := rand.New(rand.NewSource(2))
			seen := make(map[Oid]bool, n)
			oids := make([]Oid, 0, n)
			for len(oids) < n {
				oid := Oid(rng.Int63n(16 * n))
				if !seen[oid] {
					seen[oid] = true
					oids = append(oids, oid)
				}
			}
			return oids
		}},
		{"random64-sorted", func() []Oid {
			rng := rand.New(rand.NewSource(3))
			oids := make([]Oid, n)
			for i := range oids {
				oids[i] = Oid(rng.Uint64())
			}
			sort.Slice(oids, func(i, j int) bool { return oids[i] < oids[j] })
			return oids
		}},
	}
	for _, p := range patterns {
		b.Run(p.name, func(b *testing.B) {
			oids := p.oids()
			var before, after runtime.MemStats
			var ix *index
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ix = nil
				runtime.GC()
				runtime.ReadMemStats(&before)
				b.StartTimer()
				ix = &index{}
				for j, oid := range oids {
					ix.set(oid, int64(4+j*64))
				}
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.StartTimer()
			}
			b.StopTimer()
			if ix.len() != len(oids) {
				b.Fatalf("index holds %d oids, want %d", ix.len(), len(oids))
			}
			b.ReportMetric(float64(ix.memoryBytes())/float64(len(oids)), "B/object")
			b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/float64(len(oids)), "heap-B/object")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(oids)), "ns/insert")
			runtime.KeepAlive(ix)
			runtime.KeepAlive(oids)
		})
	}
}
