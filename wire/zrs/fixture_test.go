package zrs

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// Fixture directories relative to this package. Missing fixtures fail the
// tests: the compatibility checks must never be skipped silently.
const (
	zrsFixtures = "../../../shared/fixtures/zrs"
	fsFixtures  = "../../../shared/fixtures/filestorage"
)

// capturedFrame is one line of stream.jsonl / stream-resume.jsonl.
type capturedFrame struct {
	Seq        int    `json:"seq"`
	Dir        string `json:"dir"`
	Len        int    `json:"len"`
	Hex        string `json:"hex"`
	Decoded    string `json:"decoded"`
	Kind       string `json:"kind"`
	DataLen    int    `json:"data_len"`
	DataSHA256 string `json:"data_sha256"`

	frame   []byte // whole frame, length prefix included
	payload []byte
}

func fixturePath(t testing.TB, dir, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture %s is missing (%v): the zc.zrs compatibility tests cannot run", p, err)
	}
	return p
}

func loadCapture(t testing.TB, name string) []*capturedFrame {
	t.Helper()
	f, err := os.Open(fixturePath(t, zrsFixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var frames []*capturedFrame
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		fr := new(capturedFrame)
		if err := json.Unmarshal(sc.Bytes(), fr); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fr.frame, err = hex.DecodeString(fr.Hex); err != nil {
			t.Fatalf("%s seq %d: %v", name, fr.Seq, err)
		}
		if len(fr.frame) != 4+fr.Len || binary.BigEndian.Uint32(fr.frame) != uint32(fr.Len) {
			t.Fatalf("%s seq %d: frame of %d bytes does not match len %d", name, fr.Seq, len(fr.frame), fr.Len)
		}
		fr.payload = fr.frame[4:]
		frames = append(frames, fr)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(frames) == 0 {
		t.Fatalf("%s is empty", name)
	}
	return frames
}

// messageRepr returns the Python repr of the tuple a message was pickled
// from, as the capture's decoded field shows it.
func messageRepr(m Message) string {
	switch m := m.(type) {
	case *TxnBegin:
		return zeo.Repr(zeo.Tuple{"T", zeo.Tuple{m.Tid.Bytes(), string(rune(m.Status)), m.User, m.Description, m.Extension}})
	case *StoreRecord:
		var dt any
		if m.DataTxn != 0 {
			dt = m.DataTxn.Bytes()
		}
		return zeo.Repr(zeo.Tuple{"S", zeo.Tuple{m.Oid.Bytes(), m.Tid.Bytes(), "", dt}})
	case *TxnChecksum:
		if m.Missing {
			return zeo.Repr(zeo.Tuple{"C", zeo.Tuple{}})
		}
		return zeo.Repr(zeo.Tuple{"C", zeo.Tuple{m.Digest[:]}})
	}
	return fmt.Sprintf("%T", m)
}

// replayCapture checks one capture: handshake, decoding of every frame,
// the MD5 chain, the receiver, and re-encoding. It returns the start tid,
// the received transactions and the primary's frames.
func replayCapture(t *testing.T, name string) (storage.Tid, []*storage.TxnRecord, []*capturedFrame) {
	frames := loadCapture(t, name)

	// Handshake: two c2s frames, reproduced by AppendHandshake.
	if len(frames) < 2 || frames[0].Dir != "c2s" || frames[1].Dir != "c2s" {
		t.Fatalf("%s does not start with the two handshake frames", name)
	}
	if err := ParseProtocol(frames[0].payload); err != nil {
		t.Fatalf("%s: protocol: %v", name, err)
	}
	if p, err := IdentifyHandshake(frames[0].payload); err != nil || p != ProtocolZRS20 {
		t.Fatalf("%s: IdentifyHandshake = %q, %v", name, p, err)
	}
	start, err := ParseStartTid(frames[1].payload)
	if err != nil {
		t.Fatalf("%s: start tid: %v", name, err)
	}
	wantHS := append(bytes.Clone(frames[0].frame), frames[1].frame...)
	if got := AppendHandshake(nil, start); !bytes.Equal(got, wantHS) {
		t.Fatalf("%s: handshake\n got %x\nwant %x", name, got, wantHS)
	}

	// Every primary frame decodes to the recorded value; C digests match
	// the chain.
	chain := NewChain(start)
	var s2c []*capturedFrame
	rawNext := false
	counts := map[string]int{}
	for _, fr := range frames[2:] {
		if fr.Dir != "s2c" {
			// After the handshake a secondary may only send keep-alives.
			if err := CheckKeepAlive(fr.payload); err != nil {
				t.Fatalf("%s seq %d: %v", name, fr.Seq, err)
			}
			continue
		}
		s2c = append(s2c, fr)
		counts[fr.Kind]++
		if rawNext {
			if fr.Kind != "raw" {
				t.Fatalf("%s seq %d: %s frame where the data frame was due", name, fr.Seq, fr.Kind)
			}
			if fr.DataLen != len(fr.payload) {
				t.Errorf("%s seq %d: data_len %d, payload %d", name, fr.Seq, fr.DataLen, len(fr.payload))
			}
			if len(fr.payload) > 0 {
				sum := sha256.Sum256(fr.payload)
				if hex.EncodeToString(sum[:]) != fr.DataSHA256 {
					t.Errorf("%s seq %d: data sha256 mismatch", name, fr.Seq)
				}
			}
			rawNext = false
			chain.Feed(fr.payload)
			continue
		}
		m, err := DecodeMessage(fr.payload)
		if err != nil {
			t.Fatalf("%s seq %d: %v", name, fr.Seq, err)
		}
		if string(m.Kind()) != fr.Kind {
			t.Fatalf("%s seq %d: decoded kind %s, recorded %s", name, fr.Seq, m.Kind(), fr.Kind)
		}
		if got := messageRepr(m); got != fr.Decoded {
			t.Errorf("%s seq %d: decoded\n got %s\nwant %s", name, fr.Seq, got, fr.Decoded)
		}
		// Decoding then encoding the message reproduces it.
		if enc, err := AppendMessage(nil, m); err != nil || !bytes.Equal(enc, fr.payload) {
			t.Errorf("%s seq %d: re-encoded message differs (%v)\n got %x\nwant %x", name, fr.Seq, err, enc, fr.payload)
		}
		switch m := m.(type) {
		case *StoreRecord:
			rawNext = true
		case *TxnChecksum:
			if m.Missing || m.Digest != chain.Sum() {
				t.Errorf("%s seq %d: checksum %x, chain %x", name, fr.Seq, m.Digest, chain.Sum())
			}
		}
		chain.Feed(fr.payload)
	}
	if counts["T"] == 0 || counts["T"] != counts["C"] || counts["S"] != counts["raw"] {
		t.Fatalf("%s: frame counts %v", name, counts)
	}

	// The receiver yields one verified transaction per 'C'.
	rcv := NewReceiver(start, ReceiverOptions{})
	var txns []*storage.TxnRecord
	for _, fr := range s2c {
		txn, err := rcv.Feed(bytes.Clone(fr.payload))
		if err != nil {
			t.Fatalf("%s seq %d: receiver: %v", name, fr.Seq, err)
		}
		if txn != nil {
			txns = append(txns, txn)
		}
	}
	if rcv.InTxn() {
		t.Fatalf("%s: receiver still inside a transaction at the end", name)
	}
	if len(txns) != counts["T"] {
		t.Fatalf("%s: receiver yielded %d transactions, capture has %d", name, len(txns), counts["T"])
	}

	// Re-encoding the received transactions reproduces every primary frame.
	enc := NewTxnEncoder(start)
	var got []byte
	for _, txn := range txns {
		if got, err = enc.AppendFrames(got, txn); err != nil {
			t.Fatalf("%s: encoding %s: %v", name, txn.Tid, err)
		}
	}
	compareFrames(t, name+" (re-encoded)", got, s2c)
	return start, txns, s2c
}

// compareFrames checks that stream holds exactly the frames of want.
func compareFrames(t *testing.T, what string, stream []byte, want []*capturedFrame) {
	t.Helper()
	fr := zeo.NewFrameReader(bytes.NewReader(stream), MaxFrameSize)
	for i, w := range want {
		p, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("%s: frame %d (seq %d, %s): %v", what, i, w.Seq, w.Kind, err)
		}
		if !bytes.Equal(p, w.payload) {
			t.Fatalf("%s: frame %d (seq %d, %s) differs\n got %x\nwant %x", what, i, w.Seq, w.Kind, p, w.payload)
		}
	}
	if _, err := fr.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("%s: extra frames after the %d expected (%v)", what, len(want), err)
	}
}

// openFixtureFS opens a copy of a FileStorage fixture read-only.
func openFixtureFS(t *testing.T, dir, name string) *storage.FileStorage {
	t.Helper()
	data, err := os.ReadFile(fixturePath(t, dir, name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := storage.Open(path, storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs
}

func iterateAll(t *testing.T, fs *storage.FileStorage, start storage.Tid) []*storage.TxnRecord {
	t.Helper()
	it, err := fs.Iterate(start, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []*storage.TxnRecord
	for {
		txn, err := it.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, txn)
	}
}

// sameTxn compares the replicated fields of two transactions.
func sameTxn(a, b *storage.TxnRecord) error {
	if a.Tid != b.Tid || a.Status != b.Status || !bytes.Equal(a.User, b.User) ||
		!bytes.Equal(a.Description, b.Description) {
		return fmt.Errorf("metadata differs: %s %q %q %q vs %s %q %q %q", a.Tid, a.Status, a.User, a.Description, b.Tid, b.Status, b.User, b.Description)
	}
	if !bytes.Equal(a.Extension, b.Extension) {
		return fmt.Errorf("extension differs: %x vs %x", a.Extension, b.Extension)
	}
	if len(a.Records) != len(b.Records) {
		return fmt.Errorf("%d records vs %d", len(a.Records), len(b.Records))
	}
	for i := range a.Records {
		x, y := &a.Records[i], &b.Records[i]
		if x.Oid != y.Oid || x.Tid != y.Tid || x.DataTxn != y.DataTxn || !bytes.Equal(x.Data, y.Data) || (x.Data == nil) != (y.Data == nil) {
			return fmt.Errorf("record %d differs: %s %s %s %d bytes (nil %v) vs %s %s %s %d bytes (nil %v)", i,
				x.Oid, x.Tid, x.DataTxn, len(x.Data), x.Data == nil, y.Oid, y.Tid, y.DataTxn, len(y.Data), y.Data == nil)
		}
	}
	if TxnHash(a) != TxnHash(b) {
		return fmt.Errorf("TxnHash differs")
	}
	return nil
}

func TestCaptureStream(t *testing.T) {
	start, txns, s2c := replayCapture(t, "stream.jsonl")
	if start != 0 || len(txns) != 25 {
		t.Fatalf("start %s, %d transactions; want 0 and 25", start, len(txns))
	}

	// basic.fs iterated by our storage and encoded from an empty secondary
	// gives the recorded frames of its 23 transactions byte for byte.
	basic := iterateAll(t, openFixtureFS(t, fsFixtures, "basic.fs"), 0)
	if len(basic) != 23 {
		t.Fatalf("basic.fs has %d transactions, want 23", len(basic))
	}
	enc := NewTxnEncoder(0)
	var got []byte
	var err error
	for _, txn := range basic {
		if got, err = enc.AppendFrames(got, txn); err != nil {
			t.Fatalf("encoding basic.fs %s: %v", txn.Tid, err)
		}
	}
	n := 0 // frames of the first 23 transactions
	for c := 0; c < 23; n++ {
		if s2c[n].Kind == "C" {
			c++
		}
	}
	compareFrames(t, "basic.fs", got, s2c[:n])

	// What the receiver yields is what the stock secondary stored
	// (secondary.fs, byte-identical to the primary's file), and for the
	// basic.fs part what our storage iterates from basic.fs.
	second := iterateAll(t, openFixtureFS(t, zrsFixtures, "secondary.fs"), 0)
	if len(second) != len(txns) {
		t.Fatalf("secondary.fs has %d transactions, the stream %d", len(second), len(txns))
	}
	for i := range txns {
		if err := sameTxn(txns[i], second[i]); err != nil {
			t.Errorf("transaction %d (%s) received vs secondary.fs: %v", i, txns[i].Tid, err)
		}
		if i < len(basic) {
			if err := sameTxn(txns[i], basic[i]); err != nil {
				t.Errorf("transaction %d (%s) received vs basic.fs: %v", i, txns[i].Tid, err)
			}
		}
	}
}

func TestCaptureStreamResume(t *testing.T) {
	start, txns, s2c := replayCapture(t, "stream-resume.jsonl")
	if start != 0x03f58e0026666666 || len(txns) != 13 {
		t.Fatalf("start %s, %d transactions; want 03f58e0026666666 and 13", start, len(txns))
	}
	// The primary serves basic.fs from the first transaction after start.
	basic := iterateAll(t, openFixtureFS(t, fsFixtures, "basic.fs"), start+1)
	if len(basic) != 13 || basic[0].Tid != 0x03f58e002aaaaaaa {
		t.Fatalf("basic.fs after %s: %d transactions", start, len(basic))
	}
	enc := NewTxnEncoder(start)
	var got []byte
	var err error
	for _, txn := range basic {
		if got, err = enc.AppendFrames(got, txn); err != nil {
			t.Fatalf("encoding basic.fs %s: %v", txn.Tid, err)
		}
	}
	compareFrames(t, "basic.fs resumed", got, s2c)
	for i := range txns {
		if err := sameTxn(txns[i], basic[i]); err != nil {
			t.Errorf("transaction %s received vs basic.fs: %v", txns[i].Tid, err)
		}
	}
}
