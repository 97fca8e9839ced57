package storage

import (
	"encoding/binary"
	"fmt"
)

// txnView is one whole transaction record (header through trailer) held in
// memory, with its records checked for consistency.
type txnView struct {
	pos int64
	hdr TxnHeader
	raw []byte // tlen+8 bytes starting at pos
}

func (v *txnView) user() []byte {
	return v.raw[TxnHeaderSize : TxnHeaderSize+int(v.hdr.ULen)]
}

func (v *txnView) description() []byte {
	o := TxnHeaderSize + int(v.hdr.ULen)
	return v.raw[o : o+int(v.hdr.DLen)]
}

func (v *txnView) extension() []byte {
	o := TxnHeaderSize + int(v.hdr.ULen) + int(v.hdr.DLen)
	return v.raw[o : o+int(v.hdr.ELen)]
}

// end is the offset just past the trailer: the next transaction's position.
func (v *txnView) end() int64 { return v.pos + int64(v.hdr.Len) + trailerSize }

// recordFunc receives a data record: its offset, header and payload (the
// pickle, or the 8-byte backpointer when PLen is 0).
type recordFunc func(pos int64, h *DataHeader, payload []byte) error

// checkHeader validates the fixed header fields against the file size; the
// returned reason is empty when the header is sound.
func checkTxnHeader(h *TxnHeader, pos, size int64) string {
	switch {
	case h.Len > uint64(size) || pos+int64(h.Len)+trailerSize > size:
		return "transaction record extends beyond the end of the file"
	case h.Len < h.metaLen():
		return "invalid transaction header: length shorter than its metadata"
	}
	return ""
}

// parseTxn checks the records of a transaction whose bytes are raw (as read
// at pos) and calls fn for each one unless fn is nil. It returns a
// *FormatError naming the offset of the first inconsistency.
func parseTxn(path string, pos int64, raw []byte, fn recordFunc) (*txnView, error) {
	if len(raw) < TxnHeaderSize+trailerSize {
		return nil, &FormatError{Path: path, Offset: pos, Reason: "transaction record too short"}
	}
	v := &txnView{pos: pos, hdr: decodeTxnHeader(raw), raw: raw}
	tlen := int64(v.hdr.Len)
	if tlen+trailerSize != int64(len(raw)) || v.hdr.Len < v.hdr.metaLen() {
		return nil, &FormatError{Path: path, Offset: pos, Reason: "invalid transaction header"}
	}
	tend := pos + tlen
	if v.hdr.Status == StatusUndone {
		// ZODB skips obsolete undone transactions without reading records.
	} else {
		rpos := pos + int64(v.hdr.metaLen())
		for rpos < tend {
			if tend-rpos < DataHeaderSize {
				return nil, &FormatError{Path: path, Offset: rpos, Reason: "data records don't add up"}
			}
			o := rpos - pos
			h := decodeDataHeader(raw[o:])
			if reason := h.checkInTxn(rpos, pos, tend); reason != "" {
				return nil, &FormatError{Path: path, Offset: rpos, Reason: reason}
			}
			payload := raw[o+DataHeaderSize : o+h.recordLen()]
			if h.PLen == 0 {
				if back := int64(binary.BigEndian.Uint64(payload)); back < 0 || back >= rpos {
					return nil, &FormatError{Path: path, Offset: rpos, Reason: fmt.Sprintf("invalid backpointer %d", back)}
				}
			}
			if fn != nil {
				if err := fn(rpos, &h, payload); err != nil {
					return nil, err
				}
			}
			rpos += h.recordLen()
		}
	}
	if trailer := binary.BigEndian.Uint64(raw[tlen:]); trailer != v.hdr.Len {
		return nil, &FormatError{Path: path, Offset: tend, Reason: "redundant transaction length check failed"}
	}
	return v, nil
}
