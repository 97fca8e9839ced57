package storage

import (
	"golang.org/x/sys/unix"
)

// The data file is also mapped read-only into memory so that loads copy
// records without a system call each. The mapping reserves more address
// space than the file uses and is replaced by a larger one when the file
// outgrows it. It is only touched under FileStorage.mu: readers hold the
// read lock while they copy, so a writer holding the lock can swap or
// unmap it safely. Only bytes below a bound the file always contains are
// ever read: the published end (FileStorage.pos), or for the replication
// feed's durable iterator the durable end, read under the same lock; and
// the mapping is used only when it covers the bound. So no access faults.

// minMapSize is the smallest mapping: address space, not memory.
const minMapSize = 1 << 30

// mapSizeFor returns the mapping length for a file of size bytes.
func mapSizeFor(size int64) int64 {
	n := int64(minMapSize)
	for n < 2*size {
		n *= 2
	}
	return n
}

// mapFile maps length bytes of the file; it returns nil when mapping is
// not possible (the storage then reads with pread).
func (s *FileStorage) mapFile(length int64) []byte {
	b, err := unix.Mmap(int(s.file.Fd()), 0, int(length), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		s.log.Debug("cannot map the data file; loads will use pread", "error", err)
		return nil
	}
	return b
}

// growMapping prepares a mapping that covers end, if the current one does
// not. Call without s.mu; install the result with swapMapping under it.
func (s *FileStorage) growMapping(end int64, current int) []byte {
	if s.noMap || end <= int64(current) {
		return nil
	}
	return s.mapFile(mapSizeFor(end))
}

// swapMapping installs m (if non-nil) and unmaps the old mapping. Call
// with s.mu held for writing.
func (s *FileStorage) swapMapping(m []byte) {
	if m == nil {
		return
	}
	if s.mapped != nil {
		_ = unix.Munmap(s.mapped)
	}
	s.mapped = m
}

// unmap releases the mapping. Call with s.mu held for writing.
func (s *FileStorage) unmap() {
	if s.mapped != nil {
		_ = unix.Munmap(s.mapped)
		s.mapped = nil
	}
}
