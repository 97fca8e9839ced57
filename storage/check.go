package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// CheckReport summarizes a FileStorage file walked by Check.
type CheckReport struct {
	// Size is the file's length in bytes.
	Size int64
	// Transactions counts transaction records of every status, as fstest
	// does (obsolete undone ones included).
	Transactions int
	// DataRecords counts the data records of the transactions that are not
	// marked undone; readers ignore the records of undone ones.
	DataRecords int
	// Objects counts distinct oids with a record, deleted ones included
	// (ZODB's len(storage) after opening the file).
	Objects int
	// LastTid is the tid of the last transaction, 0 for a file without any.
	LastTid Tid
}

// Check reads the FileStorage file at path from start to end without
// changing it and reports whether it is sound. It makes the checks of ZODB's
// fstest.check (magic; per transaction: complete header, increasing tids,
// length within the file, checkpoint flag cleared, valid status, metadata
// within the record, data records inside their transaction with the right
// tloc, redundant length) plus the ones the storage makes when it reads a
// record (no versions, previous-record pointer and backpointer before the
// record), and a few more that cost no extra pass: each record carries its
// transaction's tid, a non-zero previous-record pointer is the oid's latest
// earlier record (ZODB's read_index logs an error otherwise), and a
// backpointer points at a record of the same oid.
//
// The file is streamed with large sequential reads; only backpointers,
// which undo and pack write, cost a small random read each.
//
// A damaged file yields a *FormatError (which wraps ErrCorrupt) naming the
// first problem and its byte offset, which is the offset fstest reports; the
// returned report then covers the transactions before the problem. Other
// errors are I/O errors.
func Check(path string) (*CheckReport, error) {
	return walkFile(path, nil)
}

// walkRecord is one data record of the transaction being walked. payload
// aliases the walk's read buffer: it is valid only during the visit.
type walkRecord struct {
	pos     int64
	hdr     DataHeader
	payload []byte // the pickle, or the 8-byte backpointer when hdr.PLen is 0
}

// txnVisitor receives each transaction that passed every check, with its
// records (none for an undone transaction, whose records are not read). r
// reads the file, for following backpointers. v.raw and recs are valid only
// during the call.
type txnVisitor func(r io.ReaderAt, v *txnView, recs []walkRecord) error

// walkFile streams the file at path through Check's checks, calling visit
// (if not nil) for each sound transaction. Dump shares it so that it prints
// nothing that Check would reject.
func walkFile(path string, visit txnVisitor) (*CheckReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	rep := &CheckReport{Size: fi.Size()}
	fail := func(off int64, format string, args ...any) (*CheckReport, error) {
		return rep, &FormatError{Path: path, Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	ioFail := func(err error) (*CheckReport, error) {
		return rep, fmt.Errorf("check %s: %w", path, err)
	}

	size := rep.Size
	if size == 0 {
		// Unlike Open, which initializes an empty file, a checker is asked
		// about existing data: fstest rejects an empty file too.
		return fail(0, "empty file")
	}
	var magic [fileHeaderSize]byte
	if size < fileHeaderSize {
		return fail(0, "invalid file header (file shorter than the magic)")
	}
	if _, err := f.ReadAt(magic[:], 0); err != nil {
		return ioFail(err)
	}
	// fstest only knows FS30; FS21 files have the same record layout and
	// the storage reads them, so they are checked the same way.
	if magic != MagicFS30 && magic != MagicFS21 {
		return fail(0, "invalid file header (magic %q)", magic[:])
	}

	w := newWindow(f, size)
	// latest maps each oid to the offset of its latest record in the
	// transactions walked so far: ZODB's index as read_index builds it.
	latest := make(map[Oid]int64)
	var recs []walkRecord
	var last Tid
	pos := int64(fileHeaderSize)
	for pos < size {
		// The order of the checks below is fstest's, so that a damaged
		// transaction is reported with the same problem and offset.
		if size-pos < TxnHeaderSize {
			return fail(pos, "truncated (partial transaction header)")
		}
		hb, err := w.bytes(pos, TxnHeaderSize)
		if err != nil {
			return ioFail(err)
		}
		h := decodeTxnHeader(hb)
		if h.Tid <= last {
			return fail(pos, "time-stamp reduction: 0x%s <= 0x%s", h.Tid, last)
		}
		// Clamping keeps the conversion from overflowing on a garbage
		// length; the window refuses any range past the end of the file.
		raw, err := w.bytes(pos, int64(min(h.Len, uint64(size)))+trailerSize)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fail(pos, "truncated possibly because of damaged records (transaction length %d runs past the end of the file)", h.Len)
		}
		if err != nil {
			return ioFail(err)
		}
		switch h.Status {
		case StatusCheckpoint:
			return fail(pos, "checkpoint flag was not cleared")
		case StatusCommitted, StatusPacked, StatusUndone:
		default:
			return fail(pos, "invalid status %q", []byte{h.Status})
		}
		if reason := checkTxnHeader(&h, pos, size); reason != "" {
			return fail(pos, "%s", reason)
		}

		recs = recs[:0]
		v, err := parseTxn(path, pos, raw, func(rpos int64, dh *DataHeader, payload []byte) error {
			if err := checkRecordLinks(f, path, rpos, dh, payload, h.Tid, latest); err != nil {
				return err
			}
			recs = append(recs, walkRecord{pos: rpos, hdr: *dh, payload: payload})
			return nil
		})
		if err != nil {
			return rep, err
		}
		if visit != nil {
			if err := visit(f, v, recs); err != nil {
				return rep, err
			}
		}
		// Like read_index, the records count for previous-pointer checks
		// only from the next transaction on.
		for _, r := range recs {
			latest[r.hdr.Oid] = r.pos
		}
		rep.Transactions++
		rep.DataRecords += len(recs)
		rep.Objects = len(latest)
		rep.LastTid = h.Tid
		last = h.Tid
		pos = v.end()
	}
	return rep, nil
}

// checkRecordLinks makes the checks of a data record at pos that parseTxn
// does not make: its tid, its previous-record pointer against latest (the
// offsets of each oid's latest record before this transaction), and, for
// a backpointer, that the record it points at belongs to the same oid.
// Backpointer targets are earlier records, which passed these checks
// themselves, so a whole chain is sound once each link is.
func checkRecordLinks(r io.ReaderAt, path string, pos int64, h *DataHeader, payload []byte, tid Tid, latest map[Oid]int64) error {
	fail := func(format string, args ...any) error {
		return &FormatError{Path: path, Offset: pos, Reason: fmt.Sprintf(format, args...)}
	}
	if h.Tid != tid {
		return fail("data record tid %s differs from its transaction's %s", h.Tid, tid)
	}
	// A zero pointer is allowed even for a known oid: pack writes one on
	// each record it copies, and ZODB only warns about it.
	if h.Prev != 0 && h.Prev != latest[h.Oid] {
		return fail("incorrect previous pointer: record says %d, index says %d", h.Prev, latest[h.Oid])
	}
	if h.PLen != 0 {
		return nil
	}
	back := int64(binary.BigEndian.Uint64(payload))
	if back == 0 {
		return nil // deletion, or undone creation
	}
	target, err := readHeaderAt(r, path, back)
	if err != nil {
		return err
	}
	if target.Oid != h.Oid || target.VLen != 0 || target.TLoc < fileHeaderSize || target.TLoc >= back || target.Tid > tid {
		return fail("backpointer %d does not point at an earlier data record of oid %s", back, h.Oid)
	}
	return nil
}

// readHeaderAt reads the data record header at pos.
func readHeaderAt(r io.ReaderAt, path string, pos int64) (DataHeader, error) {
	var b [DataHeaderSize]byte
	if err := readFullAt(r, path, b[:], pos); err != nil {
		return DataHeader{}, err
	}
	return decodeDataHeader(b[:]), nil
}

// readFullAt fills b from off; bytes missing at the end of the file are
// damage, not an I/O error.
func readFullAt(r io.ReaderAt, path string, b []byte, off int64) error {
	if _, err := r.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			return &FormatError{Path: path, Offset: off, Reason: "unexpected end of file"}
		}
		return fmt.Errorf("read %s at %d: %w", path, off, err)
	}
	return nil
}
