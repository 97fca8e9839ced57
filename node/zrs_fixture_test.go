package node_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zrs-go/zrs/node"
	"github.com/zrs-go/zrs/wire/zeo"
)

// zrsCapture is a recorded zc.zrs replication stream.
type zrsCapture struct {
	handshake [][]byte // the secondary's frames, length prefix included
	stream    []byte   // the primary's frames, length prefixes included
	frames    [][]byte // the primary's payloads
	kinds     []string // their kinds: T, S, raw, C
}

func fixturePath(t *testing.T, parts ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{"..", "..", "shared", "fixtures"}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture missing: %v", err)
	}
	return p
}

func loadCapture(t *testing.T, name string) zrsCapture {
	t.Helper()
	f, err := os.Open(fixturePath(t, "zrs", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var c zrsCapture
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var fr struct {
			Dir, Hex, Kind string
		}
		if err := json.Unmarshal(sc.Bytes(), &fr); err != nil {
			t.Fatal(err)
		}
		raw, err := hex.DecodeString(fr.Hex)
		if err != nil {
			t.Fatal(err)
		}
		if fr.Dir == "c2s" {
			c.handshake = append(c.handshake, raw)
		} else {
			c.stream = append(c.stream, raw...)
			c.frames = append(c.frames, raw[4:])
			c.kinds = append(c.kinds, fr.Kind)
		}
	}
	return c
}

func copyFile(t *testing.T, src, dst string, limit int64) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if limit >= 0 {
		b = b[:limit]
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSecondaryFromRecordedZRSStream plays a stock zc.zrs primary: it
// accepts our secondary, checks its handshake against the recorded one,
// and sends the recorded stream. The secondary's file must end up
// byte-identical to the one the real zc.zrs secondary wrote.
func TestSecondaryFromRecordedZRSStream(t *testing.T) {
	for _, tc := range []struct {
		capture string
		start   int64 // bytes of basic.fs the secondary starts with, -1: empty
		want    string
	}{
		{"stream.jsonl", -1, fixturePath(t, "zrs", "secondary.fs")},
		{"stream-resume.jsonl", 113162, fixturePath(t, "filestorage", "basic.fs")},
	} {
		t.Run(tc.capture, func(t *testing.T) {
			capture := loadCapture(t, tc.capture)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			handshake := make(chan []byte, 1)
			go func() {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				defer nc.Close()
				var got []byte
				fr := zeo.NewFrameReader(nc, 64)
				for range capture.handshake {
					p, err := fr.ReadFrame()
					if err != nil {
						break
					}
					got = append(got, zeo.EncodeFrame(p)...)
				}
				handshake <- got
				nc.Write(capture.stream)
				io.Copy(io.Discard, nc) // keep-alives until the secondary hangs up
			}()

			dir := t.TempDir()
			if tc.start >= 0 {
				copyFile(t, fixturePath(t, "filestorage", "basic.fs"), filepath.Join(dir, "Data.fs"), tc.start)
			}
			sec := startNode(t, nodeConfig("s", dir, &node.ReplicationConfig{
				ReplicateFrom: ln.Addr().String(), Protocol: node.ReplicationZRS20}))
			select {
			case got := <-handshake:
				if want := bytes.Join(capture.handshake, nil); !bytes.Equal(got, want) {
					t.Fatalf("handshake %x, zc.zrs sent %x", got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the secondary never connected")
			}
			want, err := os.ReadFile(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the secondary to apply the stream", func() bool {
				return sec.Storage().Size() == int64(len(want))
			})
			sec.stop()
			got, err := os.ReadFile(sec.Storage().Path())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("secondary file differs from zc.zrs's (%d vs %d bytes)", len(got), len(want))
			}
		})
	}
}

// TestPrimaryServesRecordedZRSStream connects to our primary as the
// recorded zc.zrs secondary did, with the same handshake, and expects the
// recorded stream byte for byte.
func TestPrimaryServesRecordedZRSStream(t *testing.T) {
	for _, tc := range []struct{ capture, file string }{
		{"stream.jsonl", fixturePath(t, "zrs", "secondary.fs")},
		{"stream-resume.jsonl", fixturePath(t, "filestorage", "basic.fs")},
	} {
		t.Run(tc.capture, func(t *testing.T) {
			capture := loadCapture(t, tc.capture)
			dir := t.TempDir()
			copyFile(t, tc.file, filepath.Join(dir, "Data.fs"), -1)
			primary := startNode(t, nodeConfig("p", dir, &node.ReplicationConfig{ReplicateTo: "127.0.0.1:0"}))
			nc, err := net.Dial("tcp", primary.ReplicationAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			for _, h := range capture.handshake {
				if _, err := nc.Write(h); err != nil {
					t.Fatal(err)
				}
			}
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			fr := zeo.NewFrameReader(nc, 1<<30)
			for i, want := range capture.frames {
				got, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("frame %d of %d: %v", i, len(capture.frames), err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("frame %d differs:\n got  %x\n want %x", i, got, want)
				}
			}
		})
	}
}

// TestCorruptedStreamAppliesNothingPartial sends the recorded stream with
// one data byte of the third transaction flipped: the checksum fails,
// the two transactions before it are applied and nothing of it is, and
// the secondary reconnects.
func TestCorruptedStreamAppliesNothingPartial(t *testing.T) {
	capture := loadCapture(t, "stream.jsonl")
	corrupt, off, checksums := -1, 0, 0
	for i, f := range capture.frames {
		if capture.kinds[i] == "C" {
			checksums++
		}
		if checksums == 2 && capture.kinds[i] == "raw" && len(f) > 0 {
			corrupt = off + 4 + len(f) - 1
			break
		}
		off += 4 + len(f)
	}
	if corrupt < 0 {
		t.Fatal("no data frame in the third transaction of the capture")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	connections := make(chan struct{}, 10)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			connections <- struct{}{}
			go func(nc net.Conn) {
				defer nc.Close()
				fr := zeo.NewFrameReader(nc, 64)
				for range capture.handshake {
					if _, err := fr.ReadFrame(); err != nil {
						return
					}
				}
				stream := append([]byte(nil), capture.stream...)
				stream[corrupt] ^= 0xff
				nc.Write(stream)
				io.Copy(io.Discard, nc)
			}(nc)
		}
	}()
	sec := startNode(t, nodeConfig("s", t.TempDir(), &node.ReplicationConfig{
		ReplicateFrom: ln.Addr().String(), Protocol: node.ReplicationZRS20}))
	for i := 0; i < 2; i++ {
		select {
		case <-connections:
		case <-time.After(10 * time.Second):
			t.Fatalf("connection %d never came: the secondary did not reconnect after the checksum error", i+1)
		}
	}
	sec.stop()
	got, err := os.ReadFile(sec.Storage().Path())
	if err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(fixturePath(t, "zrs", "secondary.fs"))
	if err != nil {
		t.Fatal(err)
	}
	// Exactly the first two transactions: basic.fs's first two end at 861+8.
	if want := full[:869]; !bytes.Equal(got, want) {
		t.Fatalf("secondary holds %d bytes, want exactly the %d bytes of the two verified transactions", len(got), len(want))
	}
}
