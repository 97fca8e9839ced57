package storage

import (
	"encoding/binary"
	"fmt"
)

// On-disk layout constants (spec A.3, A.6).
const (
	// TxnHeaderSize is the fixed part of a transaction header.
	TxnHeaderSize = 23
	// DataHeaderSize is the fixed part of a data record header.
	DataHeaderSize = 42
	// trailerSize is the redundant transaction length after each transaction.
	trailerSize = 8
	// fileHeaderSize is the magic at the start of the file.
	fileHeaderSize = 4
	// maxMetaLen bounds user, description and extension lengths.
	maxMetaLen = 0xffff
)

// Magic numbers at the start of a FileStorage file.
var (
	MagicFS30 = [4]byte{'F', 'S', '3', '0'}
	MagicFS21 = [4]byte{'F', 'S', '2', '1'}
)

// Transaction status bytes (spec A.4).
const (
	StatusCommitted  byte = ' '
	StatusPacked     byte = 'p'
	StatusCheckpoint byte = 'c'
	StatusUndone     byte = 'u'
)

// TxnHeader is the fixed part of a transaction record.
type TxnHeader struct {
	Tid    Tid
	Len    uint64 // tlen: record length without the 8-byte trailer
	Status byte
	ULen   uint16
	DLen   uint16
	ELen   uint16
}

// metaLen is the header length including user, description and extension.
func (h *TxnHeader) metaLen() uint64 {
	return TxnHeaderSize + uint64(h.ULen) + uint64(h.DLen) + uint64(h.ELen)
}

func decodeTxnHeader(b []byte) TxnHeader {
	_ = b[TxnHeaderSize-1]
	return TxnHeader{
		Tid:    Tid(binary.BigEndian.Uint64(b[0:])),
		Len:    binary.BigEndian.Uint64(b[8:]),
		Status: b[16],
		ULen:   binary.BigEndian.Uint16(b[17:]),
		DLen:   binary.BigEndian.Uint16(b[19:]),
		ELen:   binary.BigEndian.Uint16(b[21:]),
	}
}

func (h *TxnHeader) encode(b []byte) {
	_ = b[TxnHeaderSize-1]
	binary.BigEndian.PutUint64(b[0:], uint64(h.Tid))
	binary.BigEndian.PutUint64(b[8:], h.Len)
	b[16] = h.Status
	binary.BigEndian.PutUint16(b[17:], h.ULen)
	binary.BigEndian.PutUint16(b[19:], h.DLen)
	binary.BigEndian.PutUint16(b[21:], h.ELen)
}

// DataHeader is the fixed part of a data record.
type DataHeader struct {
	Oid  Oid
	Tid  Tid
	Prev int64 // offset of the oid's previous record, 0 if none
	TLoc int64 // offset of the enclosing transaction
	VLen uint16
	PLen uint64 // pickle length; 0 means an 8-byte backpointer follows
}

// recordLen is the length of the whole data record.
func (h *DataHeader) recordLen() int64 {
	if h.PLen == 0 {
		return DataHeaderSize + 8
	}
	return DataHeaderSize + int64(h.PLen)
}

func decodeDataHeader(b []byte) DataHeader {
	_ = b[DataHeaderSize-1]
	return DataHeader{
		Oid:  Oid(binary.BigEndian.Uint64(b[0:])),
		Tid:  Tid(binary.BigEndian.Uint64(b[8:])),
		Prev: int64(binary.BigEndian.Uint64(b[16:])),
		TLoc: int64(binary.BigEndian.Uint64(b[24:])),
		VLen: binary.BigEndian.Uint16(b[32:]),
		PLen: binary.BigEndian.Uint64(b[34:]),
	}
}

func (h *DataHeader) encode(b []byte) {
	_ = b[DataHeaderSize-1]
	binary.BigEndian.PutUint64(b[0:], uint64(h.Oid))
	binary.BigEndian.PutUint64(b[8:], uint64(h.Tid))
	binary.BigEndian.PutUint64(b[16:], uint64(h.Prev))
	binary.BigEndian.PutUint64(b[24:], uint64(h.TLoc))
	binary.BigEndian.PutUint16(b[32:], h.VLen)
	binary.BigEndian.PutUint64(b[34:], h.PLen)
}

// checkInTxn validates a data record header read at pos inside the
// transaction [tpos, tend) (ZODB's checkData plus the stricter rules of
// spec A.6). It never trusts a length before bounding it.
func (h *DataHeader) checkInTxn(pos, tpos, tend int64) string {
	switch {
	case h.VLen != 0:
		return "data record has a non-zero version length (versions are not supported)"
	case h.TLoc != tpos:
		return fmt.Sprintf("data record exceeds transaction record: tloc %d != tpos %d", h.TLoc, tpos)
	case h.PLen > uint64(tend-pos):
		return "data record exceeds transaction record"
	case pos+h.recordLen() > tend:
		return "data record exceeds transaction record"
	case h.Prev < 0 || h.Prev >= pos:
		return fmt.Sprintf("data record has an invalid previous-record pointer %d", h.Prev)
	}
	return ""
}
