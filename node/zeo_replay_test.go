package node

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// recordedFrame is one line of a ZEO wire transcript.
type recordedFrame struct {
	Seq  int    `json:"seq"`
	Conn int    `json:"conn"`
	Dir  string `json:"dir"`
	Hex  string `json:"hex"`
	Kind string `json:"kind"`
	Step string `json:"step"`
}

func loadTranscript(t *testing.T, name string) []recordedFrame {
	t.Helper()
	path := filepath.Join("..", "..", "shared", "fixtures", "zeo5", name)
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("ZEO transcript fixture missing: %v", err)
	}
	defer f.Close()
	var frames []recordedFrame
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var fr recordedFrame
		if err := json.Unmarshal(sc.Bytes(), &fr); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, fr)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return frames
}

// steppingClock reproduces the recording's clock: 2024-03-01T00:00:00Z
// plus one second per transaction begun.
type steppingClock struct {
	mu sync.Mutex
	n  time.Duration
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += time.Second
	return time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).Add(c.n)
}

// volatile matches the parts of a reply that legitimately differ between
// runs: server_status's start time, and its connection count, because
// the transcript does not show when the real clients hung up (so the
// replay keeps every connection open).
var volatile = regexp.MustCompile(`'start': '[^']*'|"start": "[^"]*"|'connections': \d+|"connections": \d+`)

// TestReplayRecordedSessions plays every frame that the stock ZEO clients
// sent in the recorded sessions to our server, on as many connections, in
// the recorded order, and expects every server frame of the recording
// back: byte for byte, apart from server_status's start time and
// connection count.
func TestReplayRecordedSessions(t *testing.T) {
	for _, tc := range []struct{ file, protocol string }{
		{"session-z5.jsonl", ProtocolPickle},
		{"session-m5.jsonl", ProtocolMsgpack},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			frames := loadTranscript(t, tc.file)
			t.Chdir(t.TempDir()) // ZEO reports the storage name as configured: "Data.fs"
			clock := &steppingClock{}
			store, err := storage.Open("Data.fs", storage.Options{Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			svc, err := NewZEOService(ZEOServiceConfig{Storage: store, Protocol: tc.protocol})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- svc.Serve(ctx, ln) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()

			type clientConn struct {
				nc net.Conn
				fr *zeo.FrameReader
			}
			conns := map[int]*clientConn{}
			codec := map[string]zeo.Codec{ProtocolPickle: zeo.PickleCodec{}, ProtocolMsgpack: zeo.MsgpackCodec{}}[tc.protocol]
			describe := func(kind string, b []byte) string {
				if kind != "message" {
					return string(b)
				}
				m, err := codec.Decode(b)
				if err != nil {
					return "undecodable: " + err.Error()
				}
				return m.String()
			}
			for _, f := range frames {
				raw, err := hex.DecodeString(f.Hex)
				if err != nil {
					t.Fatal(err)
				}
				c := conns[f.Conn]
				if c == nil {
					nc, err := net.Dial("tcp", ln.Addr().String())
					if err != nil {
						t.Fatal(err)
					}
					defer nc.Close()
					c = &clientConn{nc: nc, fr: zeo.NewFrameReader(nc, 0)}
					conns[f.Conn] = c
				}
				if f.Dir == "c2s" {
					if _, err := c.nc.Write(raw); err != nil {
						t.Fatalf("seq %d (%s): write: %v", f.Seq, f.Step, err)
					}
					continue
				}
				c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				got, err := c.fr.ReadFrame()
				if err != nil {
					t.Fatalf("seq %d (%s): expected %s, read failed: %v", f.Seq, f.Step, describe(f.Kind, raw[4:]), err)
				}
				want := raw[4:]
				if string(got) == string(want) {
					continue
				}
				gotS, wantS := describe(f.Kind, got), describe(f.Kind, want)
				if volatile.ReplaceAllString(gotS, "start") == volatile.ReplaceAllString(wantS, "start") && gotS != wantS {
					continue
				}
				t.Errorf("seq %d conn %d (%s):\n got  %s\n want %s", f.Seq, f.Conn, f.Step, gotS, wantS)
			}
		})
	}
}
