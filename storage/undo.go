package storage

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ErrUndo marks an undo that cannot be done; *UndoError wraps it.
var ErrUndo = errors.New("UndoError")

// UndoError says why a transaction cannot be undone, per object when an
// object is the cause (ZODB's UndoError and MultipleUndoErrors).
type UndoError struct {
	Reason string
	// Oids are the objects that could not be undone, if any.
	Oids []Oid
}

func (e *UndoError) Error() string {
	if len(e.Oids) == 0 {
		return "UndoError: " + e.Reason
	}
	names := make([]string, len(e.Oids))
	for i, oid := range e.Oids {
		names[i] = oid.String()
	}
	return fmt.Sprintf("UndoError: %s (oids %s)", e.Reason, strings.Join(names, ", "))
}

func (e *UndoError) Unwrap() error { return ErrUndo }

// Undo writes, into this transaction, records that revert the changes of
// the transaction whose undo id (base64 of its tid, from UndoLog) is id,
// as ZODB's transactional undo does: a changed object gets a backpointer
// to its revision before that transaction (or a deletion record if the
// transaction created it). Objects changed again since cannot be undone,
// since that would need Python conflict resolution. It returns the oids
// the undo changes.
func (t *Txn) Undo(id []byte) ([]Oid, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkOpen(); err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(id)))
	if err != nil || len(raw) != 8 {
		return nil, &UndoError{Reason: "invalid transaction id"}
	}
	tid := Tid(binary.BigEndian.Uint64(raw))
	s := t.s
	tpos, err := s.findTxn(tid)
	if err != nil {
		return nil, &UndoError{Reason: "invalid transaction id"}
	}
	h, err := s.readTxnHeader(tpos)
	if err != nil {
		return nil, err
	}
	if h.Status != StatusCommitted {
		return nil, &UndoError{Reason: "non-undoable transaction"}
	}
	if h.Len > uint64(s.Size()-tpos) {
		return nil, &FormatError{Path: s.path, Offset: tpos, Reason: "transaction record extends beyond the committed file"}
	}
	txnRaw := make([]byte, int64(h.Len)+trailerSize)
	if err := s.readAt(txnRaw, tpos); err != nil {
		return nil, err
	}
	type undone struct {
		oid      Oid
		pos, pre int64
	}
	var recs []undone
	if _, err := parseTxn(s.path, tpos, txnRaw, func(rpos int64, dh *DataHeader, _ []byte) error {
		recs = append(recs, undone{dh.Oid, rpos, dh.Prev})
		return nil
	}); err != nil {
		return nil, err
	}

	// A failure is forgiven if a later record of the same object in the
	// undone transaction succeeds, as in ZODB.
	failures := make(map[Oid]string)
	var failOrder, oids []Oid
	for _, r := range recs {
		delete(failures, r.oid)
		back, reason, err := t.undoRecord(r.oid, r.pos, r.pre)
		if err != nil {
			return nil, err
		}
		if reason != "" {
			if _, seen := failures[r.oid]; !seen {
				failOrder = append(failOrder, r.oid)
			}
			failures[r.oid] = reason
			continue
		}
		ipos, _ := s.latestPos(r.oid)
		if _, seen := t.written[r.oid]; !seen {
			oids = append(oids, r.oid)
		}
		t.appendRecord(r.oid, t.tid, ipos, nil, back)
	}
	if len(failures) > 0 {
		e := &UndoError{}
		for _, oid := range failOrder {
			if reason, ok := failures[oid]; ok {
				e.Reason = reason
				e.Oids = append(e.Oids, oid)
			}
		}
		return nil, e
	}
	return oids, nil
}

// undoRecord decides the backpointer that undoes the record at pos (whose
// previous revision is at pre), or the reason it cannot be undone.
func (t *Txn) undoRecord(oid Oid, pos, pre int64) (back int64, reason string, err error) {
	s := t.s
	ipos, _ := s.latestPos(oid)
	s.mu.RLock()
	defer s.mu.RUnlock()
	current := ipos
	inTxn, written := t.written[oid]
	if written {
		current = inTxn
	}
	if current != pos {
		// Changed since: undo only if the current data is the same.
		cur, err := t.recordAt(current, oid)
		if err != nil {
			return 0, "", err
		}
		dataPtr := cur.pos
		if cur.data == nil {
			dataPtr = cur.back
		}
		if dataPtr != pos {
			undoneData, err := s.dataAt(pos, oid, t.tpos)
			if err != nil {
				return 0, "_loadBack() failed", nil
			}
			curData := cur.data
			if curData == nil {
				if curData, err = s.dataAt(dataPtr, oid, t.tpos); err != nil {
					return 0, "_loadBack() failed", nil
				}
			}
			if !bytes.Equal(undoneData, curData) {
				if pre == 0 {
					return 0, "Can't undo an add transaction followed by changes", nil
				}
				return 0, "Some data were modified by a later transaction", nil
			}
		}
	}
	return pre, "", nil
}

// recordAt reads oid's record at pos, which may be one this transaction
// wrote and has not voted yet. The caller holds s.mu for reading.
func (t *Txn) recordAt(pos int64, oid Oid) (record, error) {
	if pos < t.tpos {
		return t.s.readRecordData(pos, oid, true, t.tpos)
	}
	o := pos - t.tpos - t.hlen
	h := decodeDataHeader(t.records[o:])
	r := record{DataHeader: h, pos: pos}
	payload := t.records[o+DataHeaderSize : o+h.recordLen()]
	if h.PLen > 0 {
		r.data = payload
	} else {
		r.back = int64(binary.BigEndian.Uint64(payload))
	}
	return r, nil
}

// dataAt returns the data of the record at pos, following backpointers,
// among the records below end. The caller holds s.mu for reading.
func (s *FileStorage) dataAt(pos int64, oid Oid, end int64) ([]byte, error) {
	if pos == 0 {
		return nil, &NoObjectError{Oid: oid, Deleted: true}
	}
	r, err := s.readRecordData(pos, oid, true, end)
	if err != nil {
		return nil, err
	}
	return s.recordDataUpTo(r, end)
}
