package zeo

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// fixtureDir holds the recorded ZEO 6.0.0 sessions (see its README.md).
const fixtureDir = "../../../shared/fixtures/zeo5"

// frameRecord is one line of a session-*.jsonl recording.
type frameRecord struct {
	Seq     int             `json:"seq"`
	Conn    int             `json:"conn"`
	Dir     string          `json:"dir"`
	Len     int             `json:"len"`
	Hex     string          `json:"hex"`
	Decoded string          `json:"decoded"`
	Step    string          `json:"step"`
	Kind    string          `json:"kind"`
	MsgID   json.RawMessage `json:"msgid"`
	Flag    json.RawMessage `json:"flag"`
	Method  string          `json:"method"`

	frame []byte // decoded Hex: length prefix + payload
}

func loadSession(t testing.TB, name string) []frameRecord {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatalf("fixture missing: %v", err) // fail, never skip
	}
	defer f.Close()
	var recs []frameRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var r frameRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.frame, err = hex.DecodeString(r.Hex); err != nil {
			t.Fatalf("%s seq %d: %v", name, r.Seq, err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(recs) == 0 {
		t.Fatalf("%s: no frames", name)
	}
	return recs
}

// fixtureRepr is Repr with the recordings' abbreviation of bytes longer
// than 64: <N bytes sha256:first 16 hex digits>.
func fixtureRepr(v any) string {
	r := reprer{bytesHook: func(dst, b []byte) ([]byte, bool) {
		if len(b) <= 64 {
			return dst, false
		}
		sum := sha256.Sum256(b)
		return fmt.Appendf(dst, "<%d bytes sha256:%x>", len(b), sum[:8]), true
	}}
	return string(r.append(nil, v, 0))
}

// jsonToValue converts the recordings' msgid/flag columns: numbers, bools,
// lists (tuples) and {"$bytes": hex}.
func jsonToValue(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("bad JSON %s: %v", raw, err)
	}
	var conv func(any) any
	conv = func(v any) any {
		switch v := v.(type) {
		case json.Number:
			n, err := v.Int64()
			if err != nil {
				t.Fatalf("msgid %s: %v", v, err)
			}
			return n
		case []any:
			tu := Tuple{}
			for _, x := range v {
				tu = append(tu, conv(x))
			}
			return tu
		case map[string]any:
			b, err := hex.DecodeString(v["$bytes"].(string))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		return v
	}
	return conv(v)
}

func TestSessionReplay(t *testing.T) {
	for _, tc := range []struct {
		file string
		enc  Encoding
	}{
		{"session-z5.jsonl", Pickle},
		{"session-m5.jsonl", Msgpack},
	} {
		t.Run(tc.file, func(t *testing.T) {
			replaySession(t, loadSession(t, tc.file), tc.enc)
		})
	}
}

func replaySession(t *testing.T, recs []frameRecord, want Encoding) {
	// Feed each direction of each connection through one FrameReader, as a
	// server or client would read it.
	type stream struct {
		conn int
		dir  string
	}
	payloads := map[stream][][]byte{}
	{
		raw := map[stream]*bytes.Buffer{}
		var order []stream
		for _, r := range recs {
			s := stream{r.Conn, r.Dir}
			if raw[s] == nil {
				raw[s] = new(bytes.Buffer)
				order = append(order, s)
			}
			raw[s].Write(r.frame)
		}
		for _, s := range order {
			fr := NewFrameReader(raw[s], 0)
			for {
				p, err := fr.ReadFrame()
				if err != nil {
					if err.Error() != "EOF" {
						t.Fatalf("conn %d %s: %v", s.conn, s.dir, err)
					}
					break
				}
				payloads[s] = append(payloads[s], p)
			}
		}
	}

	codecs := map[int]Codec{} // per connection, chosen by the handshake
	counts := map[string]int{}
	for _, r := range recs {
		s := stream{r.Conn, r.Dir}
		if len(payloads[s]) == 0 {
			t.Fatalf("seq %d: stream ran out of frames", r.Seq)
		}
		p := payloads[s][0]
		payloads[s] = payloads[s][1:]
		if len(p) != r.Len || len(r.frame) != HeaderSize+r.Len || !bytes.Equal(p, r.frame[HeaderSize:]) {
			t.Fatalf("seq %d: FrameReader returned %d bytes, recording has len %d", r.Seq, len(p), r.Len)
		}

		var got string   // our rendering of the "decoded" column
		var again []byte // our re-encoding of the payload
		switch r.Kind {
		case "handshake":
			if r.Dir == "s2c" {
				enc, err := ParseAnnouncement(p)
				if err != nil {
					t.Errorf("seq %d: %v", r.Seq, err)
					continue
				}
				if enc != want {
					t.Errorf("seq %d: announcement %v, want %v", r.Seq, enc, want)
				}
				got = "server protocol announcement " + Repr(enc.Announcement())
				again = enc.Announcement()
			} else {
				enc, ruok, err := ParseClientHandshake(p)
				if err != nil {
					t.Errorf("seq %d: %v", r.Seq, err)
					continue
				}
				if ruok {
					got = "ruok probe " + Repr([]byte(RuokProbe))
					again = []byte(RuokProbe)
				} else {
					codecs[r.Conn] = enc.Codec()
					got = "client protocol selection " + Repr(enc.Announcement())
					again = enc.Announcement()
				}
			}
		case "ruok-reply":
			v, err := DecodeJSON(p)
			if err != nil {
				t.Errorf("seq %d: %v", r.Seq, err)
				continue
			}
			got = "ruok JSON reply: " + string(p)
			if again, err = EncodeJSON(v); err != nil {
				t.Errorf("seq %d: re-encode: %v", r.Seq, err)
				continue
			}
		case "message":
			codec := codecs[r.Conn]
			if codec == nil {
				t.Fatalf("seq %d: message before handshake", r.Seq)
			}
			m, err := codec.Decode(p)
			if err != nil {
				t.Errorf("seq %d (%s %s): decode: %v", r.Seq, r.Step, r.Method, err)
				continue
			}
			got = fixtureRepr(Tuple{m.MsgID, m.Flag, m.Method, m.Args})
			if m.Method != r.Method {
				t.Errorf("seq %d: method %q, want %q", r.Seq, m.Method, r.Method)
			}
			if w := fixtureRepr(jsonToValue(t, r.MsgID)); fixtureRepr(m.MsgID) != w {
				t.Errorf("seq %d: msgid %s, want %s", r.Seq, fixtureRepr(m.MsgID), w)
			}
			// The flag's type matters (False vs 0): compare exactly.
			if wf := jsonToValue(t, r.Flag); fmt.Sprintf("%T %v", m.Flag, m.Flag) != fmt.Sprintf("%T %v", wf, wf) {
				t.Errorf("seq %d: flag %#v, want %#v", r.Seq, m.Flag, wf)
			}
			if again, err = codec.Encode(m); err != nil {
				t.Errorf("seq %d: re-encode: %v", r.Seq, err)
				continue
			}
		default:
			t.Fatalf("seq %d: unknown kind %q", r.Seq, r.Kind)
		}
		counts[r.Kind+" "+r.Dir]++
		if got != r.Decoded {
			t.Errorf("seq %d (%s): decoded differs\n got: %s\nwant: %s", r.Seq, r.Step, got, r.Decoded)
		}
		frame := EncodeFrame(again)
		if r.Kind == "message" {
			// The codec's own framing must agree too.
			m, _ := codecs[r.Conn].Decode(p)
			f, err := codecs[r.Conn].EncodeFrame(m)
			if err != nil || !bytes.Equal(f, frame) {
				t.Errorf("seq %d: EncodeFrame differs from Encode: %x, %v", r.Seq, f, err)
			}
		}
		if !bytes.Equal(frame, r.frame) {
			t.Errorf("seq %d (%s %s %s): re-encoding differs\n got: %x\nwant: %x", r.Seq, r.Step, r.Dir, r.Method, frame, r.frame)
		}
	}
	t.Logf("%d frames checked: %v", len(recs), counts)
}
