package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"

	ogórek "github.com/kisielk/og-rek"
)

// The .index file (spec A.10) is a stream of protocol-3 pickles written in
// fast mode: the file position the index is valid up to, one
// (prefix6, bucket) tuple per 6-byte oid prefix in ascending order, and None.
// A bucket is every 2-byte oid suffix followed by every 6-byte offset.

const (
	indexPrefixLen = 6
	indexSuffixLen = 2
	indexOffsetLen = 6
)

// errLegacyIndex marks an .index in the pre-fsIndex dict form; it is rebuilt.
var errLegacyIndex = errors.New("legacy dict-form .index")

// writeIndexFile writes ix, valid up to pos, to path in ZODB's format.
// It writes path+".index_tmp" first and renames it, so a crash never leaves
// a half-written index behind.
func writeIndexFile(path string, ix *index, pos int64) (err error) {
	tmp := path + "_tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	enc := ogórek.NewEncoderWithConfig(w, &ogórek.EncoderConfig{Protocol: 3})
	if err = enc.Encode(pos); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	var (
		prefix  uint64
		suffix  []byte
		offsets []byte
		started bool
	)
	flush := func() error {
		if !started {
			return nil
		}
		var p [8]byte
		binary.BigEndian.PutUint64(p[:], prefix)
		bucket := append(suffix, offsets...)
		return enc.Encode(ogórek.Tuple{ogórek.Bytes(p[2:]), ogórek.Bytes(bucket)})
	}
	var werr error
	ix.each(func(oid Oid, off int64) bool {
		if p := uint64(oid) >> 16; !started || p != prefix {
			if werr = flush(); werr != nil {
				return false
			}
			prefix, suffix, offsets, started = p, suffix[:0], offsets[:0], true
		}
		suffix = binary.BigEndian.AppendUint16(suffix, uint16(oid))
		var o [8]byte
		binary.BigEndian.PutUint64(o[:], uint64(off))
		offsets = append(offsets, o[2:]...)
		return true
	})
	if werr == nil {
		werr = flush()
	}
	if werr == nil {
		werr = enc.Encode(ogórek.None{})
	}
	if werr == nil {
		werr = w.Flush()
	}
	if werr == nil {
		werr = f.Sync()
	}
	if werr != nil {
		return fmt.Errorf("write index: %w", werr)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

// readIndexFile reads an .index file. It returns the saved position and the
// index; any malformation is an error (the caller then rebuilds).
func readIndexFile(path string) (*index, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	dec := ogórek.NewDecoder(bufio.NewReaderSize(f, 1<<20))
	v, err := dec.Decode()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: first pickle: %w", path, err)
	}
	pos, err := pickleInt(v)
	if err != nil {
		if _, isMap := v.(map[any]any); isMap {
			return nil, 0, errLegacyIndex
		}
		return nil, 0, fmt.Errorf("%s: position: %w", path, err)
	}
	ix := &index{}
	lastPrefix := int64(-1)
	for {
		v, err := dec.Decode()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, 0, fmt.Errorf("%s: ends before the closing None", path)
			}
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		if _, done := v.(ogórek.None); done {
			break
		}
		t, ok := v.(ogórek.Tuple)
		if !ok || len(t) != 2 {
			return nil, 0, fmt.Errorf("%s: expected (prefix, bucket) tuple, got %T", path, v)
		}
		p, ok1 := t[0].(ogórek.Bytes)
		b, ok2 := t[1].(ogórek.Bytes)
		if !ok1 || !ok2 || len(p) != indexPrefixLen || len(b)%(indexSuffixLen+indexOffsetLen) != 0 {
			return nil, 0, fmt.Errorf("%s: malformed bucket", path)
		}
		var pb [8]byte
		copy(pb[2:], p)
		prefix := int64(binary.BigEndian.Uint64(pb[:]))
		if prefix <= lastPrefix {
			return nil, 0, fmt.Errorf("%s: buckets out of order", path)
		}
		lastPrefix = prefix
		if err := ix.addBucket(uint64(prefix), []byte(b)); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	return ix, pos, nil
}

// addBucket appends one .index bucket; prefixes must arrive in order.
func (ix *index) addBucket(prefix6 uint64, bucket []byte) error {
	n := len(bucket) / (indexSuffixLen + indexOffsetLen)
	suffixes, offsets := bucket[:2*n], bucket[2*n:]
	last := -1
	for i := 0; i < n; i++ {
		s := int(binary.BigEndian.Uint16(suffixes[2*i:]))
		if s <= last {
			return errors.New("bucket keys out of order")
		}
		last = s
		var o [8]byte
		copy(o[2:], offsets[6*i:6*i+6])
		oid := Oid(prefix6<<16 | uint64(s))
		ix.appendSorted(oid, int64(binary.BigEndian.Uint64(o[:])))
	}
	return nil
}

// appendSorted adds an oid greater than every oid in the index.
func (ix *index) appendSorted(oid Oid, pos int64) {
	prefix, suffix := splitOid(oid)
	entry := suffix<<offsetBits | uint64(pos)
	if n := len(ix.buckets); n > 0 && ix.buckets[n-1].prefix == prefix {
		ix.buckets[n-1].entries = append(ix.buckets[n-1].entries, entry)
	} else {
		ix.buckets = append(ix.buckets, indexBucket{prefix: prefix, entries: []uint64{entry}})
	}
	ix.count++
}

func pickleInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case *big.Int:
		if x.IsInt64() {
			return x.Int64(), nil
		}
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), nil
		}
	}
	return 0, fmt.Errorf("not an integer: %T", v)
}
