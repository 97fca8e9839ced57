package storage

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// loadPrefetch is how many bytes after a data header a load reads in the
// same system call, so that small objects cost one read.
const loadPrefetch = 512

// readAt reads exactly len(b) bytes at off; a short read is corruption.
func (s *FileStorage) readAt(b []byte, off int64) error {
	if _, err := s.file.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			return &FormatError{Path: s.path, Offset: off, Reason: "unexpected end of file"}
		}
		return fmt.Errorf("read %s at %d: %w", s.path, off, err)
	}
	return nil
}

// readDataHeader reads the data record header at pos. When oid is
// non-zero, the record must belong to it.
func (s *FileStorage) readDataHeader(pos int64, oid Oid) (DataHeader, error) {
	var b [DataHeaderSize]byte
	if err := s.readAt(b[:], pos); err != nil {
		return DataHeader{}, err
	}
	h := decodeDataHeader(b[:])
	if oid != 0 && h.Oid != oid {
		return h, &FormatError{Path: s.path, Offset: pos, Reason: fmt.Sprintf("data record for oid %s where oid %s was expected", h.Oid, oid)}
	}
	if h.VLen != 0 || h.Prev >= pos || h.Prev < 0 {
		return h, &FormatError{Path: s.path, Offset: pos, Reason: "invalid data record header"}
	}
	return h, nil
}

// record is one data record read from the file.
type record struct {
	DataHeader
	pos  int64
	data []byte // the pickle; nil when PLen is 0
	back int64  // the backpointer when PLen is 0
}

// readRecord reads the whole record at pos, from the mapping when there is
// one. The caller holds s.mu for reading, so the committed end (s.pos)
// bounds every length read from the file.
func (s *FileStorage) readRecord(pos int64, oid Oid) (record, error) {
	return s.readRecordData(pos, oid, true, s.pos)
}

// readRecordData is readRecord that copies the pickle only if wantData,
// and reads records below end. Writers pass the end of what they have
// written, which may be past what readers see.
func (s *FileStorage) readRecordData(pos int64, oid Oid, wantData bool, end int64) (record, error) {
	mapped := s.mapped
	if end > int64(len(mapped)) {
		mapped = nil
	}
	if pos < fileHeaderSize || pos > end-DataHeaderSize {
		return record{}, &FormatError{Path: s.path, Offset: pos, Reason: "data record offset outside the committed file"}
	}
	var hb [DataHeaderSize + 8]byte
	var head []byte
	if mapped != nil {
		head = mapped[pos:min(end, pos+DataHeaderSize+8)]
	} else {
		n, err := s.file.ReadAt(hb[:min(int64(len(hb)), end-pos)], pos)
		if n < DataHeaderSize {
			if err == nil || errors.Is(err, io.EOF) {
				return record{}, &FormatError{Path: s.path, Offset: pos, Reason: "unexpected end of file"}
			}
			return record{}, fmt.Errorf("read %s at %d: %w", s.path, pos, err)
		}
		head = hb[:n]
	}
	r := record{DataHeader: decodeDataHeader(head), pos: pos}
	if oid != 0 && r.Oid != oid {
		return r, &FormatError{Path: s.path, Offset: pos, Reason: fmt.Sprintf("data record for oid %s where oid %s was expected", r.Oid, oid)}
	}
	payload := r.recordLen() - DataHeaderSize
	if r.VLen != 0 || r.Prev >= pos || r.Prev < 0 || r.PLen > uint64(end) || payload > end-pos-DataHeaderSize {
		return r, &FormatError{Path: s.path, Offset: pos, Reason: "invalid data record header"}
	}
	if r.PLen == 0 {
		r.back = int64(binary.BigEndian.Uint64(head[DataHeaderSize:]))
		if r.back < 0 || r.back >= pos {
			return r, &FormatError{Path: s.path, Offset: pos, Reason: fmt.Sprintf("invalid backpointer %d", r.back)}
		}
		return r, nil
	}
	if !wantData {
		return r, nil
	}
	r.data = make([]byte, r.PLen)
	if mapped != nil {
		copy(r.data, mapped[pos+DataHeaderSize:])
		return r, nil
	}
	if err := s.readAt(r.data, pos+DataHeaderSize); err != nil {
		return r, err
	}
	return r, nil
}

// recordData returns the pickle of a record, following backpointers. A
// record that resolves to no data is a deletion: *NoObjectError. The
// caller holds s.mu for reading.
func (s *FileStorage) recordData(r record) ([]byte, error) { return s.recordDataUpTo(r, s.pos) }

// recordDataUpTo is recordData for records below end.
func (s *FileStorage) recordDataUpTo(r record, end int64) ([]byte, error) {
	for r.data == nil {
		if r.back == 0 {
			return nil, &NoObjectError{Oid: r.Oid, Deleted: true}
		}
		var err error
		// back < pos always, so the chain ends.
		if r, err = s.readRecordData(r.back, r.Oid, true, end); err != nil {
			return nil, err
		}
	}
	return r.data, nil
}

// lookup returns the offset of oid's current record. The caller holds
// s.mu for reading.
func (s *FileStorage) lookup(oid Oid) (int64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	pos, ok := s.idx.get(oid)
	if !ok {
		return 0, &NoObjectError{Oid: oid}
	}
	return pos, nil
}

// Load returns the current data of oid and its serial.
func (s *FileStorage) Load(oid Oid) ([]byte, Tid, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pos, err := s.lookup(oid)
	if err != nil {
		return nil, 0, err
	}
	r, err := s.readRecord(pos, oid)
	if err != nil {
		return nil, 0, err
	}
	data, err := s.recordData(r)
	return data, r.Tid, err
}

// Revision is one revision of an object as LoadBefore returns it.
type Revision struct {
	Data []byte
	// Tid is the revision's serial.
	Tid Tid
	// NextTid is the serial of the next revision, 0 if this one is current.
	NextTid Tid
}

// LoadBefore returns the revision of oid that was current just before
// before. ok is false when the object had no revision before then (ZODB's
// None). An unknown oid, or a revision that is a deletion, is a
// *NoObjectError.
func (s *FileStorage) LoadBefore(oid Oid, before Tid) (rev Revision, ok bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pos, err := s.lookup(oid)
	if err != nil {
		return Revision{}, false, err
	}
	var next Tid
	for {
		r, err := s.readRecordData(pos, oid, false, s.pos)
		if err != nil {
			return Revision{}, false, err
		}
		if r.Tid < before {
			if r.PLen > 0 {
				r, err = s.readRecord(pos, oid)
				if err != nil {
					return Revision{}, false, err
				}
			}
			data, err := s.recordData(r)
			if err != nil {
				return Revision{}, false, err
			}
			return Revision{Data: data, Tid: r.Tid, NextTid: next}, true, nil
		}
		if r.Prev == 0 {
			return Revision{}, false, nil
		}
		next, pos = r.Tid, r.Prev
	}
}

// LoadSerial returns the data of oid's revision serial.
func (s *FileStorage) LoadSerial(oid Oid, serial Tid) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pos, err := s.lookup(oid)
	if err != nil {
		return nil, err
	}
	for {
		h, err := s.readDataHeader(pos, oid)
		if err != nil {
			return nil, err
		}
		if h.Tid == serial {
			r, err := s.readRecord(pos, oid)
			if err != nil {
				return nil, err
			}
			data, err := s.recordData(r)
			if errors.Is(err, ErrNoObject) {
				return nil, &NoObjectError{Oid: oid, Serial: serial, Deleted: true}
			}
			return data, err
		}
		if h.Tid < serial || h.Prev == 0 {
			return nil, &NoObjectError{Oid: oid, Serial: serial}
		}
		pos = h.Prev
	}
}

// TxnInfo is a transaction's metadata as history and undoLog report it.
type TxnInfo struct {
	Tid         Tid
	User        []byte
	Description []byte
	// Extension is the pickled extension dict, empty if none.
	Extension []byte
}

// HistoryEntry is one revision in an object's history.
type HistoryEntry struct {
	TxnInfo
	// Size is the pickle length, 0 for backpointer and deletion records.
	Size int64
}

// History returns up to size revisions of oid, newest first.
func (s *FileStorage) History(oid Oid, size int) ([]HistoryEntry, error) {
	s.mu.RLock()
	pos, err := s.lookup(oid)
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	var out []HistoryEntry
	for len(out) < size {
		h, err := s.readDataHeader(pos, oid)
		if err != nil {
			return nil, err
		}
		info, err := s.readTxnInfo(h.TLoc)
		if err != nil {
			return nil, err
		}
		info.Tid = h.Tid
		out = append(out, HistoryEntry{TxnInfo: info, Size: int64(h.PLen)})
		if h.Prev == 0 {
			break
		}
		pos = h.Prev
	}
	return out, nil
}

// readTxnHeader reads and sanity-checks the transaction header at tpos.
func (s *FileStorage) readTxnHeader(tpos int64) (TxnHeader, error) {
	var b [TxnHeaderSize]byte
	if err := s.readAt(b[:], tpos); err != nil {
		return TxnHeader{}, err
	}
	h := decodeTxnHeader(b[:])
	if h.Len < h.metaLen() {
		return h, &FormatError{Path: s.path, Offset: tpos, Reason: "invalid transaction header"}
	}
	return h, nil
}

// readTxnInfo reads the metadata of the transaction at tpos.
func (s *FileStorage) readTxnInfo(tpos int64) (TxnInfo, error) {
	h, err := s.readTxnHeader(tpos)
	if err != nil {
		return TxnInfo{}, err
	}
	meta := make([]byte, h.metaLen()-TxnHeaderSize)
	if err := s.readAt(meta, tpos+TxnHeaderSize); err != nil {
		return TxnInfo{}, err
	}
	u, d := int(h.ULen), int(h.DLen)
	return TxnInfo{Tid: h.Tid, User: meta[:u:u], Description: meta[u : u+d : u+d], Extension: meta[u+d:]}, nil
}

// UndoEntry is one undoable transaction in the undo log.
type UndoEntry struct {
	TxnInfo
	// ID is the undo id clients pass back: base64 of the tid.
	ID []byte
	// Size is the transaction record's length (tlen).
	Size int64
}

// UndoLog lists undoable transactions newest first, skipping the first
// `first` of them and stopping at `last` (ZODB's undoLog; a negative last
// means at most -last entries). The scan stops at the first packed
// transaction.
func (s *FileStorage) UndoLog(first, last int) ([]UndoEntry, error) {
	if last < 0 {
		last = first - last
	}
	s.mu.RLock()
	pos := s.pos
	s.mu.RUnlock()
	var out []UndoEntry
	for i := 0; pos > fileHeaderSize && i < last; {
		tpos, h, err := s.txnBefore(pos)
		if err != nil {
			return nil, err
		}
		pos = tpos
		if h.Status == StatusPacked {
			break
		}
		if h.Status != StatusCommitted {
			continue
		}
		if i >= first {
			info, err := s.readTxnInfo(tpos)
			if err != nil {
				return nil, err
			}
			id := base64.StdEncoding.EncodeToString(h.Tid.Bytes())
			out = append(out, UndoEntry{TxnInfo: info, ID: []byte(id), Size: int64(h.Len)})
		}
		i++
	}
	return out, nil
}

// txnBefore returns the transaction that ends at end.
func (s *FileStorage) txnBefore(end int64) (int64, TxnHeader, error) {
	var b [8]byte
	if err := s.readAt(b[:], end-8); err != nil {
		return 0, TxnHeader{}, err
	}
	tl := binary.BigEndian.Uint64(b[:])
	if tl > uint64(end) || end-8-int64(tl) < fileHeaderSize {
		return 0, TxnHeader{}, &FormatError{Path: s.path, Offset: end - 8, Reason: "invalid redundant transaction length"}
	}
	tpos := end - 8 - int64(tl)
	h, err := s.readTxnHeader(tpos)
	if err != nil {
		return 0, h, err
	}
	if h.Len != tl {
		return 0, h, &FormatError{Path: s.path, Offset: tpos, Reason: "redundant transaction length check failed"}
	}
	return tpos, h, nil
}

// RecordIterNext returns the object with the smallest oid ≥ from, its
// current serial and data, and the next oid after it (ok false when it is
// the last one). Like ZODB, a deleted object yields a *NoObjectError.
func (s *FileStorage) RecordIterNext(from Oid) (oid Oid, tid Tid, data []byte, next Oid, more bool, err error) {
	if s.closed.Load() {
		return 0, 0, nil, 0, false, ErrClosed
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	oid, pos, found := s.idx.next(from)
	if found && oid != ^Oid(0) {
		next, _, more = s.idx.next(oid + 1)
	}
	if !found {
		return 0, 0, nil, 0, false, &NoObjectError{Oid: from}
	}
	r, err := s.readRecord(pos, oid)
	if err != nil {
		return oid, 0, nil, next, more, err
	}
	data, err = s.recordData(r)
	return oid, r.Tid, data, next, more, err
}

// dataFind is ZODB's _data_find: the offset of oid's last record in the
// transaction at tpos to use as a backpointer for data, or 0 when the
// record holds different data. The caller holds the commit lock.
func (s *FileStorage) dataFind(tpos int64, oid Oid, data []byte) (int64, error) {
	h, err := s.readTxnHeader(tpos)
	if err != nil {
		return 0, err
	}
	if h.Len > uint64(max(s.Size(), s.votes.end())-tpos) {
		return 0, &FormatError{Path: s.path, Offset: tpos, Reason: "transaction record extends beyond the committed file"}
	}
	raw := make([]byte, int64(h.Len)+trailerSize)
	if err := s.readAt(raw, tpos); err != nil {
		return 0, err
	}
	var found int64
	var payload []byte
	var plen uint64
	_, err = parseTxn(s.path, tpos, raw, func(rpos int64, dh *DataHeader, p []byte) error {
		if dh.Oid == oid {
			found, payload, plen = rpos, p, dh.PLen
		}
		return nil
	})
	if err != nil || found == 0 {
		return 0, err
	}
	if plen == 0 {
		return found, nil // a backpointer itself: trust it
	}
	if !bytes.Equal(payload, data) {
		return 0, nil
	}
	return found, nil
}
