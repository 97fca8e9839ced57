package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Options configure Open.
type Options struct {
	// ReadOnly opens without the lock file, never writes, and serves the
	// file up to the end of its last sound transaction.
	ReadOnly bool
	// Logger receives warnings about recovery; hclog.NewNullLogger() if nil.
	Logger hclog.Logger
	// Now is the clock for new tids; time.Now if nil.
	Now func() time.Time
}

// FileStorage is an open FileStorage-format file. All methods are safe for
// concurrent use; one transaction commits at a time.
type FileStorage struct {
	path     string
	readOnly bool
	log      hclog.Logger
	now      func() time.Time
	file     *os.File
	lock     *os.File
	magic    [4]byte

	// mu guards the committed state below. Commits hold it only to publish.
	mu      sync.RWMutex
	idx     *index
	pos     int64 // end of the last committed transaction
	lastTid Tid
	changed chan struct{} // closed and replaced when a commit is published
	mapped  []byte        // read-only mapping of the file, see mmap.go
	noMap   bool
	marks   txnMarks // sparse tid → position map for finding transactions

	oidMu  sync.Mutex
	maxOid Oid

	// commitLock has one token; the transaction in progress holds it.
	commitLock chan struct{}
	// votes holds voted transactions until they are decided (votes.go).
	votes voteQueue
	// dur, pending and publishMu implement group commit (groupcommit.go),
	// gate the commit gate (gate.go).
	dur       durability
	pending   pendingSet
	publishMu sync.Mutex
	gate      gateState
	// finishing counts committers waiting for durability, so that Close
	// lets them complete.
	finishing sync.WaitGroup
	// lastStamp is the last tid handed out (BaseStorage._ts); guarded by
	// ownership of commitLock.
	lastStamp Tid
	// current is the transaction holding commitLock, for Close to abort.
	current atomic.Pointer[Txn]

	closed atomic.Bool
	// failed is set when a commit could not be made durable; the storage
	// refuses further commits since the file state is unknown.
	failed atomic.Pointer[error]
}

// Open opens or creates the FileStorage at path.
func Open(path string, opts Options) (*FileStorage, error) {
	s := &FileStorage{
		path:       path,
		readOnly:   opts.ReadOnly,
		log:        opts.Logger,
		now:        opts.Now,
		idx:        &index{},
		changed:    make(chan struct{}),
		commitLock: make(chan struct{}, 1),
	}
	s.dur.cond = sync.NewCond(&s.dur.mu)
	s.dur.changed = make(chan struct{})
	s.gate.init()
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.open(); err != nil {
		s.closeFiles()
		return nil, err
	}
	s.mapped = s.growMapping(s.pos, 0)
	s.votes.init(s.pos)
	s.dur.finished, s.dur.durable = s.pos, s.pos
	return s, nil
}

func (s *FileStorage) open() error {
	var err error
	if s.readOnly {
		s.file, err = os.Open(s.path)
	} else {
		if s.lock, err = lockFile(s.path + ".lock"); err != nil {
			return err
		}
		s.file, err = os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o644)
	}
	if err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	fi, err := s.file.Stat()
	if err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	size := fi.Size()
	if size == 0 {
		s.magic = MagicFS30
		s.pos = fileHeaderSize
		if s.readOnly {
			return nil
		}
		if _, err := s.file.WriteAt(MagicFS30[:], 0); err != nil {
			return fmt.Errorf("initialize %s: %w", s.path, err)
		}
		if err := s.file.Sync(); err != nil {
			return fmt.Errorf("initialize %s: %w", s.path, err)
		}
		return nil
	}
	if size < fileHeaderSize {
		return &FormatError{Path: s.path, Offset: 0, Reason: "file too short for a FileStorage header"}
	}
	if _, err := s.file.ReadAt(s.magic[:], 0); err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	if s.magic != MagicFS30 && s.magic != MagicFS21 {
		return &FormatError{Path: s.path, Offset: 0, Reason: fmt.Sprintf("not a FileStorage file (magic %q)", s.magic[:])}
	}

	start, last, fromIndex := s.restoreIndex(size)
	if err := s.scan(start, last, size); err != nil {
		return err
	}
	if oid, ok := s.idx.maxOid(); ok {
		s.maxOid = oid
	}
	s.lastStamp = s.lastTid
	if !fromIndex && !s.readOnly {
		if err := writeIndexFile(s.path+".index", s.idx, s.pos); err != nil {
			s.log.Warn("could not save the rebuilt index", "path", s.path, "error", err)
		}
	}
	return nil
}

// restoreIndex loads NAME.index when it exists and passes ZODB's sanity
// check; it returns where the scan should start and the last tid so far.
func (s *FileStorage) restoreIndex(size int64) (start int64, last Tid, ok bool) {
	name := s.path + ".index"
	ix, pos, err := readIndexFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return fileHeaderSize, 0, false
	}
	if err == nil {
		if tid, sane := s.checkIndex(ix, pos, size); sane {
			s.idx = ix
			return pos, tid, true
		}
		err = errors.New("it does not match the data file")
	}
	s.log.Warn("ignoring index", "path", s.path, "reason", err)
	return fileHeaderSize, 0, false
}

// checkIndex is ZODB's _check_sanity: the saved position must be a
// transaction boundary, and the records of the last non-empty transaction
// before it (at most five) must be where the index says.
func (s *FileStorage) checkIndex(ix *index, pos, size int64) (Tid, bool) {
	if pos < 100 || pos > size {
		return 0, false
	}
	var ltid Tid
	const maxChecked = 5
	for steps := 0; steps < 1000; steps++ {
		var b [8]byte
		if _, err := s.file.ReadAt(b[:], pos-8); err != nil {
			return 0, false
		}
		tl := binary.BigEndian.Uint64(b[:])
		if tl > uint64(pos) {
			return 0, false
		}
		pos = pos - int64(tl) - 8
		if pos < fileHeaderSize {
			return 0, false
		}
		var hb [TxnHeaderSize]byte
		if _, err := s.file.ReadAt(hb[:], pos); err != nil {
			return 0, false
		}
		h := decodeTxnHeader(hb[:])
		if ltid == 0 {
			ltid = h.Tid
		}
		if h.Len != tl {
			return 0, false
		}
		if h.Status == StatusUndone {
			continue
		}
		if (h.Status != StatusCommitted && h.Status != StatusPacked) || tl < h.metaLen() {
			return 0, false
		}
		tend := pos + int64(tl)
		opos := pos + int64(h.metaLen())
		if opos == tend {
			continue
		}
		for checked := 0; opos < tend && checked < maxChecked; checked++ {
			var db [DataHeaderSize]byte
			if _, err := s.file.ReadAt(db[:], opos); err != nil {
				return 0, false
			}
			d := decodeDataHeader(db[:])
			if d.PLen > uint64(tend) || opos+d.recordLen() > tend || d.TLoc != pos {
				return 0, false
			}
			if at, ok := ix.get(d.Oid); !ok || at != opos {
				return 0, false
			}
			opos += d.recordLen()
		}
		return ltid, true
	}
	return 0, false
}

// scan reads transactions forward from start, indexing them, and recovers
// an interrupted commit at the end of the file (spec A.9).
func (s *FileStorage) scan(start int64, last Tid, size int64) error {
	w := newWindow(s.file, size)
	pos := start
	type entry struct {
		oid Oid
		pos int64
	}
	var pending []entry
	for pos < size {
		if size-pos < TxnHeaderSize {
			return s.cutTail(pos, size, last, false, "partial transaction header")
		}
		hb, err := w.bytes(pos, TxnHeaderSize)
		if err != nil {
			return fmt.Errorf("scan %s: %w", s.path, err)
		}
		h := decodeTxnHeader(hb)
		if reason := checkTxnHeader(&h, pos, size); reason != "" {
			return s.cutTail(pos, size, last, true, reason)
		}
		if h.Status == StatusCheckpoint {
			return s.cutTail(pos, size, last, true, "interrupted commit (checkpoint flag set)")
		}
		switch h.Status {
		case StatusCommitted, StatusPacked, StatusUndone:
		default:
			s.log.Warn("transaction has an invalid status", "path", s.path, "offset", pos, "status", string(h.Status))
		}
		if h.Tid <= last {
			s.log.Warn("time-stamp reduction", "path", s.path, "offset", pos, "tid", h.Tid, "previous", last)
		}
		raw, err := w.bytes(pos, int64(h.Len)+trailerSize)
		if err != nil {
			return fmt.Errorf("scan %s: %w", s.path, err)
		}
		pending = pending[:0]
		v, err := parseTxn(s.path, pos, raw, func(rpos int64, dh *DataHeader, _ []byte) error {
			pending = append(pending, entry{dh.Oid, rpos})
			return nil
		})
		if err != nil {
			return err
		}
		if v.end() > maxOffset {
			return &FormatError{Path: s.path, Offset: pos, Reason: "file larger than 2^48 bytes"}
		}
		for _, e := range pending {
			s.idx.set(e.oid, e.pos)
		}
		if h.Status != StatusUndone {
			s.marks.add(h.Tid, pos)
		}
		last = h.Tid
		pos = v.end()
	}
	s.pos, s.lastTid = pos, last
	return nil
}

// cutTail handles a transaction at pos that cannot be complete. When no
// sound transaction follows it, it is the remains of an interrupted commit
// or garbage: like ZODB, the bytes are saved to NAME.trN (when saveTail)
// and cut off. When sound transactions follow, the damage is in the middle
// of the file and cutting would drop committed data, so it is an error.
func (s *FileStorage) cutTail(pos, size int64, last Tid, saveTail bool, reason string) error {
	if s.soundTxnEndsFileAfter(pos, size, last) {
		return &FormatError{Path: s.path, Offset: pos, Reason: reason + ", but complete transactions follow it"}
	}
	s.pos, s.lastTid = pos, last
	if s.readOnly {
		s.log.Warn("ignoring damaged end of file (read-only)", "path", s.path, "offset", pos, "reason", reason)
		return nil
	}
	s.log.Warn("truncating damaged end of file", "path", s.path, "offset", pos, "reason", reason)
	if saveTail {
		if err := s.saveTail(pos, size); err != nil {
			return err
		}
	}
	if err := s.file.Truncate(pos); err != nil {
		return fmt.Errorf("truncate %s at %d: %w", s.path, pos, err)
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("truncate %s at %d: %w", s.path, pos, err)
	}
	return nil
}

// soundTxnEndsFileAfter reports whether the file ends with a complete,
// committed transaction that starts after pos and is newer than last.
func (s *FileStorage) soundTxnEndsFileAfter(pos, size int64, last Tid) bool {
	var b [8]byte
	if size-pos < TxnHeaderSize+trailerSize {
		return false
	}
	if _, err := s.file.ReadAt(b[:], size-8); err != nil {
		return false
	}
	rtl := binary.BigEndian.Uint64(b[:])
	if rtl > uint64(size) {
		return false
	}
	tpos := size - 8 - int64(rtl)
	if tpos <= pos || size-tpos < TxnHeaderSize {
		return false
	}
	var hb [TxnHeaderSize]byte
	if _, err := s.file.ReadAt(hb[:], tpos); err != nil {
		return false
	}
	h := decodeTxnHeader(hb[:])
	return h.Len == rtl && h.Len >= h.metaLen() && h.Tid > last &&
		(h.Status == StatusCommitted || h.Status == StatusPacked)
}

// saveTail copies [pos, size) to the first free NAME.trN.
func (s *FileStorage) saveTail(pos, size int64) error {
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s.tr%d", s.path, i)
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("save damaged tail: %w", err)
		}
		_, err = io.Copy(f, io.NewSectionReader(s.file, pos, size-pos))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("save damaged tail to %s: %w", name, err)
		}
		s.log.Warn("wrote truncated data", "path", s.path, "to", name, "bytes", size-pos)
		return nil
	}
}

// Path returns the data file's path.
func (s *FileStorage) Path() string { return s.path }

// ReadOnly reports whether the storage was opened read-only.
func (s *FileStorage) ReadOnly() bool { return s.readOnly }

// LastTransaction returns the tid of the last committed transaction, 0 for
// an empty storage.
func (s *FileStorage) LastTransaction() Tid {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastTid
}

// Size returns the committed length of the data file (ZODB's getSize).
func (s *FileStorage) Size() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pos
}

// Len returns the number of objects in the index, deleted ones included
// (ZODB's len(storage)).
func (s *FileStorage) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.idx.len()
}

// Changed returns a channel that is closed when the next commit becomes
// visible. Call it again after it fires.
func (s *FileStorage) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// NewOids allocates n new object ids, above every oid in the file.
func (s *FileStorage) NewOids(n int) ([]Oid, error) {
	if err := s.checkWritable(); err != nil {
		return nil, err
	}
	s.oidMu.Lock()
	defer s.oidMu.Unlock()
	if s.maxOid > ^Oid(0)-Oid(n) {
		return nil, fmt.Errorf("object ids exhausted (highest is %s)", s.maxOid)
	}
	oids := make([]Oid, n)
	for i := range oids {
		s.maxOid++
		oids[i] = s.maxOid
	}
	return oids, nil
}

// noteOid raises the oid allocator above oid (restore of foreign data).
func (s *FileStorage) noteOid(oid Oid) {
	s.oidMu.Lock()
	if oid > s.maxOid {
		s.maxOid = oid
	}
	s.oidMu.Unlock()
}

func (s *FileStorage) checkWritable() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.readOnly {
		return ErrReadOnly
	}
	if p := s.failed.Load(); p != nil {
		return fmt.Errorf("storage failed earlier: %w", *p)
	}
	return nil
}

// Close aborts a transaction in progress, saves the .index (read-write) and
// releases the file and its lock.
func (s *FileStorage) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	// Abort a transaction in progress (or wait for it to finish) and keep
	// the commit lock so that none starts. Voted transactions go first:
	// the one in progress may be waiting for their decision.
	s.abortVotes()
	if t := s.current.Load(); t != nil {
		t.TpcAbort()
	}
	s.commitLock <- struct{}{}
	// Votes that joined the queue in the meantime.
	s.abortVotes()
	// A gate call may block for as long as secondaries are away; its
	// committers are told ErrNotAcknowledged.
	s.stopPublisher()
	s.finishing.Wait()
	var err error
	if !s.readOnly && s.failed.Load() == nil {
		// Transactions finished with TpcFinishQueued and not yet flushed.
		err = s.Flush()
	}
	if !s.readOnly && s.failed.Load() == nil {
		// Transactions the gate never released are durable past the
		// index's end, so reopening finds and publishes them; the index
		// itself is sound either way.
		if n := s.unpublishedCount(); n > 0 {
			s.log.Warn("closing with durable transactions the commit gate did not release; they will be visible after reopening",
				"path", s.path, "transactions", n)
		}
		s.mu.RLock()
		if ierr := writeIndexFile(s.path+".index", s.idx, s.pos); err == nil {
			err = ierr
		}
		s.mu.RUnlock()
	}
	s.mu.Lock()
	s.unmap()
	s.mu.Unlock()
	if cerr := s.closeFiles(); err == nil {
		err = cerr
	}
	return err
}

func (s *FileStorage) closeFiles() error {
	var err error
	if s.file != nil {
		err = s.file.Close()
	}
	if lerr := unlockFile(s.lock); err == nil {
		err = lerr
	}
	return err
}
