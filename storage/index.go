package storage

import "sort"

// index maps each oid to the file offset of its current data record.
//
// It is kept compact: oids are grouped by their high bits into sorted
// buckets, and each entry packs the low oid bits and a 48-bit offset into
// one uint64 (8 bytes an object, like ZODB's fsIndex). Offsets are limited
// to 48 bits by the .index format anyway. It is not safe for concurrent use;
// FileStorage guards it.
type index struct {
	buckets []indexBucket // sorted by prefix
	count   int
}

const (
	suffixBits = 12
	suffixMask = 1<<suffixBits - 1
	offsetBits = 48
	offsetMask = 1<<offsetBits - 1
	// maxOffset is the largest file offset an index entry can hold.
	maxOffset = offsetMask
)

type indexBucket struct {
	prefix  uint64   // oid >> suffixBits
	entries []uint64 // sorted: suffix<<offsetBits | offset
}

func splitOid(oid Oid) (prefix uint64, suffix uint64) {
	return uint64(oid) >> suffixBits, uint64(oid) & suffixMask
}

// findBucket returns the position of prefix in buckets and whether it exists.
func (ix *index) findBucket(prefix uint64) (int, bool) {
	b := ix.buckets
	i := sort.Search(len(b), func(i int) bool { return b[i].prefix >= prefix })
	return i, i < len(b) && b[i].prefix == prefix
}

// findEntry returns the position of suffix in entries and whether it exists.
func findEntry(entries []uint64, suffix uint64) (int, bool) {
	key := suffix << offsetBits
	lo, hi := 0, len(entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if entries[m] < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(entries) && entries[lo]>>offsetBits == suffix
}

// get returns the offset of oid's current record.
func (ix *index) get(oid Oid) (int64, bool) {
	prefix, suffix := splitOid(oid)
	bi, ok := ix.findBucket(prefix)
	if !ok {
		return 0, false
	}
	entries := ix.buckets[bi].entries
	ei, ok := findEntry(entries, suffix)
	if !ok {
		return 0, false
	}
	return int64(entries[ei] & offsetMask), true
}

// set records pos as oid's current record. pos must be ≤ maxOffset.
func (ix *index) set(oid Oid, pos int64) {
	prefix, suffix := splitOid(oid)
	entry := suffix<<offsetBits | uint64(pos)
	bi, ok := ix.findBucket(prefix)
	if !ok {
		ix.buckets = append(ix.buckets, indexBucket{})
		copy(ix.buckets[bi+1:], ix.buckets[bi:])
		ix.buckets[bi] = indexBucket{prefix: prefix, entries: []uint64{entry}}
		ix.count++
		return
	}
	b := &ix.buckets[bi]
	if n := len(b.entries); n > 0 && b.entries[n-1]>>offsetBits < suffix {
		b.entries = append(b.entries, entry) // new oids usually come in order
		ix.count++
		return
	}
	ei, ok := findEntry(b.entries, suffix)
	if ok {
		b.entries[ei] = entry
		return
	}
	b.entries = append(b.entries, 0)
	copy(b.entries[ei+1:], b.entries[ei:])
	b.entries[ei] = entry
	ix.count++
}

// len returns the number of oids.
func (ix *index) len() int { return ix.count }

// maxOid returns the largest oid, or false if the index is empty.
func (ix *index) maxOid() (Oid, bool) {
	if len(ix.buckets) == 0 {
		return 0, false
	}
	b := ix.buckets[len(ix.buckets)-1]
	return Oid(b.prefix<<suffixBits | b.entries[len(b.entries)-1]>>offsetBits), true
}

// next returns the smallest oid ≥ from and its offset (fsIndex.minKey).
func (ix *index) next(from Oid) (Oid, int64, bool) {
	prefix, suffix := splitOid(from)
	bi, _ := ix.findBucket(prefix)
	for ; bi < len(ix.buckets); bi++ {
		b := ix.buckets[bi]
		ei := 0
		if b.prefix == prefix {
			ei, _ = findEntry(b.entries, suffix)
		}
		if ei < len(b.entries) {
			e := b.entries[ei]
			return Oid(b.prefix<<suffixBits | e>>offsetBits), int64(e & offsetMask), true
		}
	}
	return 0, 0, false
}

// each calls fn for every oid in ascending order until fn returns false.
func (ix *index) each(fn func(oid Oid, pos int64) bool) {
	for _, b := range ix.buckets {
		for _, e := range b.entries {
			if !fn(Oid(b.prefix<<suffixBits|e>>offsetBits), int64(e&offsetMask)) {
				return
			}
		}
	}
}

// memoryBytes estimates the heap the index holds, for benchmarks.
func (ix *index) memoryBytes() int {
	n := cap(ix.buckets) * 32
	for _, b := range ix.buckets {
		n += cap(b.entries) * 8
	}
	return n
}
