package zeo

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFrameRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 2, readChunk - 1, readChunk, readChunk + 1, 3*readChunk + 17, 1 << 20}
	var buf bytes.Buffer
	fw := NewFrameWriter(&buf, 0)
	for _, n := range sizes {
		if err := fw.WriteFrame(seqBytes(n)); err != nil {
			t.Fatal(err)
		}
	}
	for _, wrap := range []struct {
		name string
		r    func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"one byte reads", iotest.OneByteReader},
		{"half reads", iotest.HalfReader},
		{"data with EOF", iotest.DataErrReader},
	} {
		fr := NewFrameReader(wrap.r(bytes.NewReader(buf.Bytes())), 0)
		for _, n := range sizes {
			p, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("%s: frame of %d: %v", wrap.name, n, err)
			}
			if !bytes.Equal(p, seqBytes(n)) {
				t.Fatalf("%s: frame of %d bytes differs (got %d)", wrap.name, n, len(p))
			}
		}
		if _, err := fr.ReadFrame(); err != io.EOF {
			t.Fatalf("%s: at end: got %v, want io.EOF", wrap.name, err)
		}
	}
}

func TestFrameReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		max   int
		want  error
		text  string
	}{
		{"empty stream", "", 0, io.EOF, "EOF"},
		{"partial header", "\x00\x00", 0, io.ErrUnexpectedEOF, "header"},
		{"partial payload", "\x00\x00\x00\x05abc", 0, io.ErrUnexpectedEOF, "5-byte frame after 3 bytes"},
		{"too large", "\x00\x00\x01\x00", 255, ErrFrameTooLarge, "256 bytes exceeds the limit of 255"},
		{"4 GiB", "\xff\xff\xff\xff", 0, ErrFrameTooLarge, "4294967295 bytes"},
	} {
		_, err := NewFrameReader(strings.NewReader(tc.input), tc.max).ReadFrame()
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: got %v, want %v mentioning %q", tc.name, err, tc.want, tc.text)
		}
	}
	// The size limit is checked against the header alone.
	fr := NewFrameReader(strings.NewReader("\x00\x00\x01\x00"+strings.Repeat("x", 256)), 256)
	if p, err := fr.ReadFrame(); err != nil || len(p) != 256 {
		t.Errorf("frame at the limit: %d bytes, %v", len(p), err)
	}
	// Read errors are wrapped, not replaced.
	boom := errors.New("boom")
	_, err := NewFrameReader(io.MultiReader(strings.NewReader("\x00\x00\x00\x09ab"), iotest.ErrReader(boom)), 0).ReadFrame()
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want boom", err)
	}
}

// A peer announcing a 200 MiB frame and then stalling must not make the
// reader allocate 200 MiB.
func TestFrameReaderLyingLength(t *testing.T) {
	input := "\x0c\x80\x00\x00" + strings.Repeat("x", 1000) // 200 MiB announced
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := NewFrameReader(strings.NewReader(input), 0).ReadFrame()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("allocated %d bytes for 1000 bytes of payload", alloc)
	}
}

func TestFrameWriter(t *testing.T) {
	var buf bytes.Buffer
	fw := NewFrameWriter(&buf, 4)
	if err := fw.WriteFrame([]byte("Z5")); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "\x00\x00\x00\x02Z5" {
		t.Fatalf("got %q", buf.String())
	}
	if err := fw.WriteFrame([]byte("12345")); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	if buf.Len() != 6 {
		t.Fatal("an oversized frame was partly written")
	}
	if fw.MaxFrameSize() != 4 || NewFrameWriter(nil, 0).MaxFrameSize() != DefaultMaxFrameSize {
		t.Fatal("MaxFrameSize")
	}
	boom := errors.New("boom")
	if err := NewFrameWriter(errWriter{boom}, 0).WriteFrame([]byte("x")); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	if f := EncodeFrame([]byte("ab")); string(f) != "\x00\x00\x00\x02ab" {
		t.Fatalf("EncodeFrame: %q", f)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// Over a real connection header and payload go out together (writev) and
// arrive intact.
func TestFrameOverPipe(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		fw := NewFrameWriter(a, 0)
		for _, p := range []string{"M5", "", "payload"} {
			if err := fw.WriteFrame([]byte(p)); err != nil {
				t.Error(err)
				return
			}
		}
		a.Close()
	}()
	fr := NewFrameReader(b, 0)
	for _, want := range []string{"M5", "", "payload"} {
		p, err := fr.ReadFrame()
		if err != nil || string(p) != want {
			t.Fatalf("got %q, %v; want %q", p, err, want)
		}
	}
	if _, err := fr.ReadFrame(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

// A reader whose payloads are handed back reads a stream of small frames
// of varying sizes into one buffer.
func TestFrameReaderReusesOneBufferForSmallFrames(t *testing.T) {
	var stream bytes.Buffer
	const frames = 200
	for i := range frames {
		stream.Write(EncodeFrame(bytes.Repeat([]byte{'x'}, 20+i%7*30)))
	}
	fr := NewFrameReader(&stream, 0)
	p, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	fr.Reuse(p)
	allocs := testing.AllocsPerRun(frames-2, func() {
		p, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		fr.Reuse(p)
	})
	// The first payload after Reuse may still be too small; after that
	// none allocates.
	if allocs > 0.02 {
		t.Fatalf("%.2f allocations per frame, want none once a buffer is handed back", allocs)
	}
}
