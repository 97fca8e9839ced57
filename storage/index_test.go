package storage

import (
	"math/rand"
	"testing"
)

// TestIndexAgainstMap drives the compact index and a plain map with the
// same operations and compares every query.
func TestIndexAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	ix := &index{}
	ref := map[Oid]int64{}
	oidSpaces := []func() Oid{
		func() Oid { return Oid(rng.Intn(5000)) },
		func() Oid { return Oid(rng.Uint64()) },
		func() Oid { return Oid(rng.Intn(100)) << 40 },
	}
	for i := 0; i < 50000; i++ {
		oid := oidSpaces[i%len(oidSpaces)]()
		pos := rng.Int63n(maxOffset)
		ix.set(oid, pos)
		ref[oid] = pos
	}
	if ix.len() != len(ref) {
		t.Fatalf("len = %d, want %d", ix.len(), len(ref))
	}
	var max Oid
	for oid, pos := range ref {
		if got, ok := ix.get(oid); !ok || got != pos {
			t.Fatalf("get(%s) = %d,%v want %d", oid, got, ok, pos)
		}
		if oid > max {
			max = oid
		}
	}
	if got, _ := ix.maxOid(); got != max {
		t.Errorf("maxOid = %s, want %s", got, max)
	}
	var prev Oid
	n := 0
	ix.each(func(oid Oid, pos int64) bool {
		if n > 0 && oid <= prev {
			t.Fatalf("each out of order: %s after %s", oid, prev)
		}
		if ref[oid] != pos {
			t.Fatalf("each(%s) = %d want %d", oid, pos, ref[oid])
		}
		prev = oid
		n++
		return true
	})
	if n != len(ref) {
		t.Errorf("each visited %d, want %d", n, len(ref))
	}
	for i := 0; i < 1000; i++ {
		from := oidSpaces[i%len(oidSpaces)]()
		want, found := Oid(0), false
		for oid := range ref {
			if oid >= from && (!found || oid < want) {
				want, found = oid, true
			}
		}
		got, _, ok := ix.next(from)
		if ok != found || (found && got != want) {
			t.Fatalf("next(%s) = %s,%v want %s,%v", from, got, ok, want, found)
		}
	}
	if _, ok := ix.get(Oid(1) << 63); ok && ref[Oid(1)<<63] == 0 {
		t.Error("get of an absent oid succeeded")
	}
}
