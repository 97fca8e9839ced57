package storage

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	ogórek "github.com/kisielk/og-rek"
)

// Dump writes a listing of the FileStorage file at path to w in the layout
// of ZODB's fsdump (ZODB.FileStorage.fsdump.fsdump with offsets), so that
// the two can be compared line by line:
//
//	Trans #00014 tid=03f58e003bbbbbbb size=134 time=2024-01-01 00:00:14.000000 offset=114227
//	    status=' ' user=b'erin' description=b'undo temp second'
//	  data #00000 oid=0000000000000010 size=89 class=persistent.mapping.PersistentMapping bp=03f58e0026666666 back=112906
//
// As in fsdump, time is the tid's UTC time, size is the transaction
// length (tlen), offset is that of the transaction's first data record,
// undone transactions are skipped, and a record's size and class are those
// of the data it resolves to, with bp naming the transaction holding that
// data; a record resolving to no data (a deletion) has no size and the
// class "undo or abort of object creation". Dump adds "back=OFFSET" to
// every record that has no data of its own. The class is the module.name
// of the record's first pickle, or "?" when that cannot be decoded.
//
// Dump makes Check's checks as it goes and stops at the first problem with
// the same *FormatError, after writing the transactions before it.
func Dump(w io.Writer, path string) error {
	bw := bufio.NewWriter(w)
	d := dumper{w: bw, path: path}
	_, err := walkFile(path, d.txn)
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("dump %s: %w", path, ferr)
	}
	return err
}

// dumper formats the transactions walkFile hands it.
type dumper struct {
	w    *bufio.Writer
	path string
	n    int // number of the next transaction, as fsdump counts them
}

func (d *dumper) txn(r io.ReaderAt, v *txnView, recs []walkRecord) error {
	if v.hdr.Status == StatusUndone {
		return nil // fsdump's iterator does not yield them
	}
	fmt.Fprintf(d.w, "Trans #%05d tid=%s size=%d time=%s offset=%d\n",
		d.n, v.hdr.Tid, v.hdr.Len, tidTimeString(v.hdr.Tid), v.pos+int64(v.hdr.metaLen()))
	fmt.Fprintf(d.w, "    status=%s user=%s description=%s\n",
		pyRepr(string(v.hdr.Status), ""), pyRepr(string(v.user()), "b"), pyRepr(string(v.description()), "b"))
	d.n++
	for j, rec := range recs {
		data, dataTxn, back := rec.payload, Tid(0), int64(-1)
		if rec.hdr.PLen == 0 {
			back = int64(binary.BigEndian.Uint64(rec.payload))
			data = nil
			if back != 0 {
				var err error
				if data, dataTxn, err = d.resolve(r, back, v.pos, rec.hdr.Oid); err != nil {
					return err
				}
			}
		}
		size, class := "", "undo or abort of object creation"
		if data != nil {
			size = fmt.Sprintf(" size=%d", len(data))
			class = pickleClass(data)
		}
		bp := ""
		if dataTxn != 0 {
			bp = " bp=" + dataTxn.String()
		}
		extra := ""
		if back >= 0 {
			extra = fmt.Sprintf(" back=%d", back)
		}
		fmt.Fprintf(d.w, "  data #%05d oid=%s%s class=%s%s%s\n", j, rec.hdr.Oid, size, class, bp, extra)
	}
	return nil
}

// resolve follows a backpointer chain starting at back (every record of it
// lies before limit, the current transaction) to the record that
// holds data, and returns that data with the record's tid (ZODB's
// _loadBackTxn with fail=False: a chain ending in a deletion yields no data
// and the deletion's tid). walkFile checked the first link; the rest are
// earlier records it checked too, but each step is still required to go
// backwards so that a file changed underfoot cannot make this loop forever.
func (d *dumper) resolve(r io.ReaderAt, back, limit int64, oid Oid) ([]byte, Tid, error) {
	for {
		h, err := readHeaderAt(r, d.path, back)
		if err != nil {
			return nil, 0, err
		}
		if h.Oid != oid {
			return nil, 0, &FormatError{Path: d.path, Offset: back, Reason: fmt.Sprintf("data record for oid %s where oid %s was expected", h.Oid, oid)}
		}
		if h.PLen > 0 {
			if h.PLen > uint64(max(0, limit-back-DataHeaderSize)) {
				return nil, 0, &FormatError{Path: d.path, Offset: back, Reason: "invalid data record header"}
			}
			data := make([]byte, h.PLen)
			if err := readFullAt(r, d.path, data, back+DataHeaderSize); err != nil {
				return nil, 0, err
			}
			return data, h.Tid, nil
		}
		var b [8]byte
		if err := readFullAt(r, d.path, b[:], back+DataHeaderSize); err != nil {
			return nil, 0, err
		}
		next := int64(binary.BigEndian.Uint64(b[:]))
		if next == 0 {
			return nil, h.Tid, nil
		}
		if next < 0 || next >= back {
			return nil, 0, &FormatError{Path: d.path, Offset: back, Reason: fmt.Sprintf("invalid backpointer %d", next)}
		}
		back = next
	}
}

// pickleClass returns "module.name" for the class named by the first
// pickle of a record (ZODB's get_pickle_metadata): the class itself
// (GLOBAL), (class, args), ((module, name), args) or (module, name). Any
// other form, or a pickle that does not decode, gives "?".
func pickleClass(data []byte) string {
	obj, err := ogórek.NewDecoder(bytes.NewReader(data)).Decode()
	if err != nil {
		return "?"
	}
	if t, ok := obj.(ogórek.Tuple); ok && len(t) > 0 {
		switch first := t[0].(type) {
		case ogórek.Class:
			obj = first
		case ogórek.Tuple:
			obj = first
		}
	}
	switch c := obj.(type) {
	case ogórek.Class:
		return c.Module + "." + c.Name
	case ogórek.Tuple:
		if len(c) == 2 {
			mod, err1 := ogórek.AsString(c[0])
			name, err2 := ogórek.AsString(c[1])
			if err1 == nil && err2 == nil {
				return mod + "." + name
			}
		}
	}
	return "?"
}

// tidTimeString formats a tid's time as persistent.TimeStamp's str() does
// ("%04d-%02d-%02d %02d:%02d:%09.6f", UTC), which fsdump prints.
func tidTimeString(t Tid) string {
	y, mo, d, h, mi, s := t.fields()
	return fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%09.6f", y, mo, d, h, mi, s)
}

// pyRepr renders raw bytes as Python's repr of a bytes object (prefix "b")
// or of a one-character-per-byte str (prefix ""), as fsdump prints user,
// description and status: single quotes unless the text contains a single
// quote and no double quote, and \\, \t, \n, \r or \xNN escapes for
// everything that is not printable ASCII.
func pyRepr(s, prefix string) string {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte(quote)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == quote || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(quote)
	return b.String()
}
