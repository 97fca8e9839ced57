package storage

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// RewindResult describes what Rewind removed.
type RewindResult struct {
	// Removed counts the transaction records removed (every status).
	Removed int
	// Bytes is how much shorter the data file became.
	Bytes int64
	// SideFile is the FileStorage file holding the removed transactions,
	// "" when nothing was removed.
	SideFile string
	// LastTid is the storage's last transaction after the rewind: the tid
	// rewound to.
	LastTid Tid
	// FirstRemoved and LastRemoved are the tids of the first and last
	// removed transactions, 0 when nothing was removed.
	FirstRemoved, LastRemoved Tid
}

// RewindError says why Rewind refused or failed. Err wraps one of
// ErrReadOnly, ErrClosed, ErrTransactionInProgress, ErrNoTransaction,
// ErrCorrupt, a context error or an I/O error.
type RewindError struct {
	// To is the tid the storage was to be rewound to.
	To  Tid
	Err error
}

func (e *RewindError) Error() string { return fmt.Sprintf("rewind to %s: %v", e.To, e.Err) }

func (e *RewindError) Unwrap() error { return e.Err }

// rewindHook, when set by a test, is called at each step of Rewind that
// changes files, so that a test can snapshot the directory as a crash at
// that moment would leave it, or make the step fail.
var rewindHook func(step string) error

// Rewind removes every transaction after the transaction to (0: all of
// them), so that the storage holds what it held when to was committed.
// A secondary uses it to drop transactions its new upstream never had.
//
// The removed transactions are first saved to a side file NAME.diverged-
// <to in 16 hex digits> (NAME.diverged-<to>.1, .2, ... when that exists;
// an existing file is never overwritten), itself a FileStorage file that
// Open (read-only), Check and Dump read, so an operator can inspect or
// replay them. Offsets inside FileStorage records are absolute, so the
// records are relocated rather than copied byte for byte: previous-record
// pointers into the kept part become 0, and backpointers into it are
// replaced by the data they lead to.
//
// Rewind refuses, with a *RewindError wrapping ErrTransactionInProgress,
// while a transaction holds the commit lock: it does not wait, because the
// caller (replication) must not race a committer. ctx bounds the copy to
// the side file; once the data file is being cut, Rewind finishes.
//
// Readers are never blocked except while the in-memory state is swapped:
// Load, LoadBefore and friends see either the old or the rewound state. An
// Iterator that was already past the new end sees io.EOF until the file
// grows again; it should be dropped, as its position may no longer be a
// transaction boundary.
//
// Crash safety: the steps are ordered so that the data file on disk is
// always either the old file or the rewound one.
//
//  1. The side file is written under a temporary name, fsynced, linked to
//     its final name (link fails rather than overwriting), and the
//     directory fsynced. A crash before this leaves the data file
//     untouched, at worst with a stray temporary file.
//  2. NAME.index is removed and the directory fsynced. The old file
//     without an index is still the old file: the next Open rebuilds it.
//     Removing it first means a stale index is never paired with the
//     shortened file (Open would reject most such pairings anyway, since
//     the index position would lie past the end of the file).
//  3. The data file is truncated at the end of transaction to, in one
//     ftruncate, and fsynced. Truncation only drops whole transactions
//     from the end, so whether or not the new length reached the disk
//     before a crash, the file is the old or the rewound one, and in
//     either case the removed transactions are safe in the side file.
//
// The oid allocator is not lowered: oids created by removed transactions
// are not handed out again, so they never name two different objects.
// Likewise new tids stay above the removed ones.
func (s *FileStorage) Rewind(ctx context.Context, to Tid) (RewindResult, error) {
	fail := func(err error) (RewindResult, error) {
		return RewindResult{}, &RewindError{To: to, Err: err}
	}
	if err := s.checkWritable(); err != nil {
		return fail(err)
	}
	select {
	case s.commitLock <- struct{}{}:
	default:
		return fail(ErrTransactionInProgress)
	}
	defer func() { <-s.commitLock }()
	if err := s.checkWritable(); err != nil {
		return fail(err) // closed while we took the lock
	}
	if s.votes.pending() {
		return fail(ErrTransactionInProgress) // voted, waiting for a finish
	}
	// Transactions finished with TpcFinishQueued lie between the
	// published end and the file end: publish them first, so that the file
	// end, the index and the group-commit state all agree, and wait for
	// their committers so none is left waiting for a durability mark that
	// the rewind lowers.
	if err := s.Flush(); err != nil {
		return fail(err)
	}
	s.finishing.Wait()
	// Publication is what moves the committed end; holding publishMu
	// keeps any publisher out while the end moves the other way.
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	s.pending.mu.Lock()
	queued := len(s.pending.queue)
	s.pending.mu.Unlock()
	if queued > 0 {
		return fail(fmt.Errorf("%d finished transactions are not yet published: %w", queued, ErrTransactionInProgress))
	}

	s.mu.RLock()
	end, last := s.pos, s.lastTid
	s.mu.RUnlock()
	cut, err := s.txnEnd(to, end)
	if err != nil {
		return fail(err)
	}
	if cut == end {
		return RewindResult{LastTid: last}, nil
	}

	side, err := s.saveDiverged(ctx, to, cut, end)
	if err != nil {
		return fail(err)
	}
	res := RewindResult{Removed: side.txns, Bytes: end - cut, SideFile: side.path, LastTid: to,
		FirstRemoved: side.first, LastRemoved: side.last}
	// The side file is durable from here on: a failure below names it,
	// since its transactions may already be gone from the data file.
	failAfter := func(err error) (RewindResult, error) {
		return res, &RewindError{To: to, Err: fmt.Errorf("%w (the removed transactions are saved in %s)", err, side.path)}
	}
	ix, err := s.rewoundIndex(cut, side.restore)
	if err != nil {
		return failAfter(err)
	}
	if err := os.Remove(s.path + ".index"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return failAfter(fmt.Errorf("remove stale index: %w", err))
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return failAfter(err)
	}
	if err := callRewindHook("index-removed"); err != nil {
		return failAfter(err)
	}

	s.mu.Lock()
	// The durable end bounds what the replication feed reads, from the
	// mapping too, so it moves under s.mu with the published end, before
	// the bytes past it go.
	s.dur.mu.Lock()
	finished, durable := s.dur.finished, s.dur.durable
	s.dur.finished, s.dur.durable = cut, cut
	s.dur.mu.Unlock()
	if err := s.file.Truncate(cut); err != nil {
		s.dur.mu.Lock()
		s.dur.finished, s.dur.durable = finished, durable
		s.dur.mu.Unlock()
		s.mu.Unlock()
		return failAfter(fmt.Errorf("truncate %s at %d: %w", s.path, cut, err))
	}
	s.idx = ix
	s.pos = cut
	s.lastTid = to
	s.marks.truncate(cut)
	// Readers only use the mapping below s.pos (or the durable end), so
	// the pages past the new end, which would fault, are never touched;
	// a fresh mapping drops them anyway and is what a reopen would have.
	s.swapMapping(s.growMapping(cut, 0))
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.votes.mu.Lock()
	s.votes.fileEnd = cut
	s.votes.mu.Unlock()
	if err := callRewindHook("truncated"); err != nil {
		return failAfter(err)
	}
	if err := s.file.Sync(); err != nil {
		// Whether the new length is on disk is unknown; as after a
		// failed commit fsync, refuse further commits.
		err = fmt.Errorf("fsync after truncating %s: %w", s.path, err)
		s.failed.CompareAndSwap(nil, &err)
		return failAfter(err)
	}
	s.log.Info("rewound storage", "path", s.path, "tid", to, "removed_transactions", res.Removed,
		"removed_bytes", res.Bytes, "side_file", res.SideFile)
	return res, nil
}

func callRewindHook(step string) error {
	if rewindHook == nil {
		return nil
	}
	return rewindHook(step)
}

// txnEnd returns the end of transaction to (the file header's end for 0),
// which must be a transaction of the committed file ending at end. The
// caller holds the commit lock.
func (s *FileStorage) txnEnd(to Tid, end int64) (int64, error) {
	if to == 0 {
		return fileHeaderSize, nil
	}
	pos, err := s.seekTid(to)
	if err != nil {
		return 0, err
	}
	if pos >= end {
		return 0, fmt.Errorf("transaction %s: %w", to, ErrNoTransaction)
	}
	h, err := s.readTxnHeader(pos)
	if err != nil {
		return 0, err
	}
	if h.Tid != to {
		return 0, fmt.Errorf("transaction %s: %w", to, ErrNoTransaction)
	}
	tend := pos + int64(h.Len) + trailerSize
	if h.Len > uint64(end) || tend > end {
		return 0, &FormatError{Path: s.path, Offset: pos, Reason: "transaction record extends beyond the committed file"}
	}
	return tend, nil
}

// divergedFile is the outcome of saveDiverged.
type divergedFile struct {
	path        string
	txns        int
	first, last Tid
	// restore maps each oid with a record in a removed transaction to its
	// newest record before the cut, 0 if it has none there.
	restore map[Oid]int64
}

// saveDiverged copies the transactions in [cut, end) to a new side file
// and makes it durable under its final name. The caller holds the commit
// lock, so the range does not change.
func (s *FileStorage) saveDiverged(ctx context.Context, to Tid, cut, end int64) (_ divergedFile, err error) {
	dir := filepath.Dir(s.path)
	base := fmt.Sprintf("%s.diverged-%s", s.path, to)
	tmp, err := os.CreateTemp(dir, filepath.Base(base)+".tmp*")
	if err != nil {
		return divergedFile{}, fmt.Errorf("create side file: %w", err)
	}
	name := tmp.Name()
	defer func() {
		if tmp != nil {
			tmp.Close()
		}
		// The temporary name goes in every case: on success the data
		// lives on under the final name.
		os.Remove(name)
	}()
	out := bufio.NewWriterSize(tmp, 1<<20)
	d, err := s.copyTxns(ctx, out, cut, end)
	if err != nil {
		return divergedFile{}, err
	}
	if err := out.Flush(); err != nil {
		return divergedFile{}, fmt.Errorf("write side file: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return divergedFile{}, fmt.Errorf("write side file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return divergedFile{}, fmt.Errorf("write side file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return divergedFile{}, fmt.Errorf("write side file: %w", err)
	}
	tmp = nil
	if d.path, err = linkNew(name, base); err != nil {
		return divergedFile{}, fmt.Errorf("name side file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return divergedFile{}, err
	}
	if err := callRewindHook("side-file-written"); err != nil {
		return divergedFile{}, err
	}
	return d, nil
}

// linkNew gives the file at from the name base, or base.1, base.2, ...,
// whichever does not exist yet, and returns it. A hard link fails when the
// name exists, which an atomic rename would not: another side file is
// never replaced.
func linkNew(from, base string) (string, error) {
	for i := 0; ; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s.%d", base, i)
		}
		err := os.Link(from, name)
		if err == nil {
			return name, nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		// A file system without hard links: reserve the name, then
		// rename over our own reservation.
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		f.Close()
		if err := os.Rename(from, name); err != nil {
			os.Remove(name)
			return "", err
		}
		return name, nil
	}
}

// syncDir makes the directory's entries (created, linked, removed files)
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// copyTxns writes a FileStorage file made of the transactions in
// [cut, end) to out: the data file's magic, then each transaction with its
// offsets relocated. Previous-record pointers and backpointers to removed
// records are retargeted; those into the kept part cannot be, so a
// previous pointer becomes 0 (as pack writes) and a backpointer is
// replaced by the data it resolves to (or by a deletion record).
func (s *FileStorage) copyTxns(ctx context.Context, out *bufio.Writer, cut, end int64) (divergedFile, error) {
	d := divergedFile{restore: make(map[Oid]int64)}
	if _, err := out.Write(s.magic[:]); err != nil {
		return d, fmt.Errorf("write side file: %w", err)
	}
	corrupt := func(off int64, format string, args ...any) error {
		return &FormatError{Path: s.path, Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	w := newWindow(s.file, end)
	moved := make(map[int64]int64) // record offset in the data file → in the side file
	opos := int64(fileHeaderSize)
	var buf []byte
	for pos := cut; pos < end; {
		if err := ctx.Err(); err != nil {
			return d, err
		}
		hb, err := w.bytes(pos, TxnHeaderSize)
		if err != nil {
			return d, fmt.Errorf("read %s: %w", s.path, err)
		}
		h := decodeTxnHeader(hb)
		if reason := checkTxnHeader(&h, pos, end); reason != "" {
			return d, corrupt(pos, "%s", reason)
		}
		raw, err := w.bytes(pos, int64(h.Len)+trailerSize)
		if err != nil {
			return d, fmt.Errorf("read %s: %w", s.path, err)
		}
		meta := int(h.metaLen())
		buf = append(buf[:0], raw[:meta]...)
		if h.Status == StatusUndone {
			// Readers skip the records of an obsolete undone transaction
			// without reading them, so they are kept as they are.
			buf = append(buf, raw[meta:h.Len]...)
		}
		v, err := parseTxn(s.path, pos, raw, func(rpos int64, dh *DataHeader, payload []byte) error {
			if dh.Prev >= cut {
				if _, ok := moved[dh.Prev]; !ok {
					return corrupt(rpos, "previous-record pointer %d is not a record", dh.Prev)
				}
			} else if _, seen := d.restore[dh.Oid]; !seen {
				// The oid's first removed record: what it follows is
				// what the index must say once the rewind is done.
				d.restore[dh.Oid] = dh.Prev
			}
			nh := DataHeader{Oid: dh.Oid, Tid: dh.Tid, Prev: moved[dh.Prev], TLoc: opos, PLen: dh.PLen}
			data := payload
			var back int64
			if dh.PLen == 0 {
				data = nil
				switch b := int64(binary.BigEndian.Uint64(payload)); {
				case b == 0: // a deletion, or an undone creation
				case b >= cut:
					var ok bool
					if back, ok = moved[b]; !ok {
						return corrupt(rpos, "backpointer %d is not a record", b)
					}
				default:
					var err error
					if data, err = s.keptData(b, dh.Oid, cut); err != nil {
						return err
					}
					nh.PLen = uint64(len(data))
				}
			}
			moved[rpos] = opos + int64(len(buf))
			var dhb [DataHeaderSize]byte
			nh.encode(dhb[:])
			buf = append(buf, dhb[:]...)
			if len(data) > 0 {
				buf = append(buf, data...)
			} else {
				buf = binary.BigEndian.AppendUint64(buf, uint64(back))
			}
			return nil
		})
		if err != nil {
			return d, err
		}
		tlen := uint64(len(buf))
		binary.BigEndian.PutUint64(buf[8:16], tlen)
		buf = binary.BigEndian.AppendUint64(buf, tlen)
		if _, err := out.Write(buf); err != nil {
			return d, fmt.Errorf("write side file: %w", err)
		}
		opos += int64(len(buf))
		if d.txns == 0 {
			d.first = h.Tid
		}
		d.txns++
		d.last = h.Tid
		pos = v.end()
	}
	return d, nil
}

// keptData returns the data a backpointer into the kept part of the file
// resolves to, nil for a deletion.
func (s *FileStorage) keptData(back int64, oid Oid, cut int64) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, err := s.readRecordData(back, oid, true, cut)
	if err != nil {
		return nil, err
	}
	data, err := s.recordDataUpTo(r, cut)
	var noObj *NoObjectError
	if errors.As(err, &noObj) && noObj.Deleted {
		return nil, nil
	}
	return data, err
}

// rewoundIndex returns the index of the file cut at cut: oids whose
// current record is removed point at their record before it, or go. The
// previous-record pointers say where that is, as they do for LoadBefore,
// so no scan of the kept part is needed. The caller holds the commit lock
// and nothing is queued, so the index does not change meanwhile.
func (s *FileStorage) rewoundIndex(cut int64, restore map[Oid]int64) (*index, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := &index{}
	var err error
	s.idx.each(func(oid Oid, pos int64) bool {
		if pos >= cut {
			prev, ok := restore[oid]
			if !ok {
				err = &FormatError{Path: s.path, Offset: pos,
					Reason: fmt.Sprintf("index entry of oid %s is not a record of a removed transaction", oid)}
				return false
			}
			if prev == 0 {
				return true // created after the cut
			}
			pos = prev
		}
		ix.appendSorted(oid, pos)
		return true
	})
	return ix, err
}

// truncate drops the marks of transactions at or after end.
func (m *txnMarks) truncate(end int64) {
	n := len(m.list)
	for n > 0 && m.list[n-1].pos >= end {
		n--
	}
	m.list = m.list[:n]
}
