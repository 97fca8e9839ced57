package storage

import (
	"fmt"
	"io"
)

// window serves byte ranges of a file from one large read-ahead buffer, so
// that forward scans issue few system calls whatever the transaction sizes.
type window struct {
	r    io.ReaderAt
	size int64 // bytes of the file that may be read
	buf  []byte
	off  int64 // file offset of buf[0]
}

const windowSize = 1 << 20

func newWindow(r io.ReaderAt, size int64) *window {
	return &window{r: r, size: size}
}

// bytes returns the n bytes at pos. The slice is valid until the next call.
// Reading past size returns io.ErrUnexpectedEOF.
func (w *window) bytes(pos int64, n int64) ([]byte, error) {
	if pos < 0 || n < 0 || pos > w.size || n > w.size-pos {
		return nil, io.ErrUnexpectedEOF
	}
	if pos >= w.off && pos+n <= w.off+int64(len(w.buf)) {
		return w.buf[pos-w.off : pos-w.off+n], nil
	}
	want := max(n, windowSize)
	want = min(want, w.size-pos)
	if int64(cap(w.buf)) < want {
		w.buf = make([]byte, want)
	}
	w.buf = w.buf[:want]
	if _, err := w.r.ReadAt(w.buf, pos); err != nil {
		w.buf = w.buf[:0]
		return nil, fmt.Errorf("read at %d: %w", pos, err)
	}
	w.off = pos
	return w.buf[:n], nil
}
