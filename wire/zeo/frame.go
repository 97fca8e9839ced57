package zeo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
)

const (
	// HeaderSize is the size of the length prefix in front of every frame.
	HeaderSize = 4

	// DefaultMaxFrameSize is the payload limit used when none is given.
	// ZEO itself has none; real messages are bounded by the largest object
	// record (blobs travel in chunks of at most 59000 bytes).
	DefaultMaxFrameSize = 256 << 20

	// readChunk is the first allocation for an incoming payload; the
	// buffer then doubles as data arrives, up to the declared size.
	readChunk = 64 << 10

	// MinReadBuffer is the smallest payload buffer a reader whose buffers
	// are handed back allocates, so that one buffer serves a stream of
	// small frames of varying sizes.
	MinReadBuffer = 4 << 10
)

// FrameReader reads length-prefixed frames: a 4-byte big-endian payload
// length followed by the payload (spec B.1).
//
// A declared length above the maximum is rejected before any payload is read,
// and the payload buffer grows only as bytes actually arrive, so a peer
// announcing a huge frame and sending nothing costs almost no memory.
type FrameReader struct {
	r     io.Reader
	max   int
	hdr   [HeaderSize]byte
	spare []byte // a payload handed back by Reuse
	// reusing is set once a payload was handed back: payload buffers are
	// then allocated with room for later frames.
	reusing bool
}

// NewFrameReader returns a FrameReader reading from r that accepts payloads
// of at most maxSize bytes; maxSize <= 0 means DefaultMaxFrameSize.
func NewFrameReader(r io.Reader, maxSize int) *FrameReader {
	if maxSize <= 0 {
		maxSize = DefaultMaxFrameSize
	}
	return &FrameReader{r: r, max: maxSize}
}

// MaxFrameSize returns the largest payload the reader accepts.
func (fr *FrameReader) MaxFrameSize() int { return fr.max }

// ReadFrame reads the next frame and returns its payload in a slice owned
// by the caller: newly allocated, or one handed back with Reuse.
//
// At a clean end of stream (no byte of a new frame read) it returns io.EOF
// itself; a stream ending inside a frame yields an error wrapping
// io.ErrUnexpectedEOF. A declared length above the maximum yields an error
// wrapping ErrFrameTooLarge; the stream is then out of sync and the
// connection should be closed. Other read errors are wrapped unchanged.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("zeo: reading frame header: %w", err)
	}
	n := binary.BigEndian.Uint32(fr.hdr[:])
	if uint64(n) > uint64(fr.max) {
		return nil, fmt.Errorf("zeo: incoming frame of %d bytes exceeds the limit of %d bytes: %w", n, fr.max, ErrFrameTooLarge)
	}
	size := int(n)
	var buf []byte
	if cap(fr.spare) >= min(size, readChunk) {
		buf, fr.spare = fr.spare[:0], nil
	} else {
		room := size
		if fr.reusing {
			room = max(size, MinReadBuffer)
		}
		buf = make([]byte, 0, min(room, readChunk))
	}
	for len(buf) < size {
		if len(buf) == cap(buf) {
			// Everything announced so far has arrived: double the buffer.
			grown := make([]byte, len(buf), min(size, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(fr.r, buf[len(buf):min(size, cap(buf))])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("zeo: reading %d-byte frame after %d bytes: %w", size, len(buf), err)
		}
	}
	return buf, nil
}

// Reuse hands back a payload returned by ReadFrame that the caller no
// longer uses (a decoded message does not alias its payload), so that a
// later ReadFrame reads into its buffer instead of allocating one.
// Buffers larger than the first allocation for a payload are not kept.
func (fr *FrameReader) Reuse(p []byte) {
	fr.reusing = true
	if cap(p) <= readChunk {
		fr.spare = p
	}
}

// FrameWriter writes length-prefixed frames.
type FrameWriter struct {
	w   io.Writer
	max int
}

// NewFrameWriter returns a FrameWriter writing to w that refuses payloads
// larger than maxSize bytes; maxSize <= 0 means DefaultMaxFrameSize.
func NewFrameWriter(w io.Writer, maxSize int) *FrameWriter {
	if maxSize <= 0 {
		maxSize = DefaultMaxFrameSize
	}
	return &FrameWriter{w: w, max: maxSize}
}

// MaxFrameSize returns the largest payload the writer sends.
func (fw *FrameWriter) MaxFrameSize() int { return fw.max }

// WriteFrame writes the length prefix and payload. On a net.Conn both go out
// in one writev call. A payload above the maximum (or above the 4 GiB the
// prefix can express) is refused with an error wrapping ErrFrameTooLarge
// and nothing is written.
func (fw *FrameWriter) WriteFrame(payload []byte) error {
	if len(payload) > fw.max || uint64(len(payload)) > math.MaxUint32 {
		return fmt.Errorf("zeo: outgoing frame of %d bytes exceeds the limit of %d bytes: %w", len(payload), fw.max, ErrFrameTooLarge)
	}
	var hdr [HeaderSize]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	bufs := net.Buffers{hdr[:], payload}
	if _, err := bufs.WriteTo(fw.w); err != nil {
		return fmt.Errorf("zeo: writing %d-byte frame: %w", len(payload), err)
	}
	return nil
}

// WriteEncoded writes whole frames (length prefixes included) in one
// system call on a net.Conn: write for a single frame, which costs the
// kernel less than a writev of one buffer, writev for several.
func WriteEncoded(w io.Writer, frames [][]byte) error {
	var err error
	if len(frames) == 1 {
		_, err = w.Write(frames[0])
	} else {
		bufs := net.Buffers(frames)
		_, err = bufs.WriteTo(w)
	}
	return err
}

// EncodeFrame returns payload with its length prefix, for callers that
// queue whole frames (handshake messages, the ruok reply). Codecs'
// EncodeFrame builds message frames without the extra copy. It panics if
// payload is 4 GiB or longer, which no frame can be.
func EncodeFrame(payload []byte) []byte {
	if uint64(len(payload)) > math.MaxUint32 {
		panic(fmt.Sprintf("zeo.EncodeFrame: payload of %d bytes does not fit a frame", len(payload)))
	}
	f := make([]byte, HeaderSize, HeaderSize+len(payload))
	binary.BigEndian.PutUint32(f, uint32(len(payload)))
	return append(f, payload...)
}

// finishFrame fills in the length prefix of a frame built after HeaderSize
// reserved bytes.
func finishFrame(f []byte) ([]byte, error) {
	n := len(f) - HeaderSize
	if uint64(n) > math.MaxUint32 {
		return nil, fmt.Errorf("zeo: message of %d bytes does not fit a frame: %w", n, ErrFrameTooLarge)
	}
	binary.BigEndian.PutUint32(f, uint32(n))
	return f, nil
}
