package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// These tests attack a real server over TCP on 127.0.0.1 with bad input
// and misbehaving peers, and check that only the offending connection
// suffers: healthy clients connected before and after keep loading and
// committing, and the data stays intact.

// patience bounds every wait in these tests; it is generous on purpose,
// because a wait that times out is a failure, not a measurement.
const patience = 20 * time.Second

// testServer is a ZEO service on a fresh storage in a temporary directory.
type testServer struct {
	t     *testing.T
	path  string
	addr  string
	store *storage.FileStorage
	svc   *ZEOService
}

func startTestServer(t *testing.T, protocol string, maxQueued int) *testServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Data.fs")
	store, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewZEOService(ZEOServiceConfig{Storage: store, Protocol: protocol, MaxQueuedBytes: maxQueued})
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
	s := &testServer{t: t, path: path, addr: ln.Addr().String(), store: store, svc: svc}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(patience):
			t.Errorf("Serve did not return after its context was canceled")
		}
		if err := store.Close(); err != nil {
			t.Errorf("close storage: %v", err)
		}
		// Whatever the peers did, the file must be sound.
		if _, err := storage.Check(path); err != nil {
			t.Errorf("data file damaged: %v", err)
		}
	})
	return s
}

// connCount returns how many connections the service holds.
func (s *testServer) connCount() int {
	s.svc.mu.Lock()
	defer s.svc.mu.Unlock()
	return len(s.svc.conns)
}

// waitConns waits until the service holds exactly n connections.
func (s *testServer) waitConns(n int) {
	s.t.Helper()
	deadline := time.Now().Add(patience)
	for s.connCount() != n {
		if time.Now().After(deadline) {
			s.t.Fatalf("the server holds %d connections, want %d", s.connCount(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

// dialClient connects a Go client. The cache is on, so that a missed
// invalidation would show as a stale load.
func (s *testServer) dialClient() *client.Client {
	s.t.Helper()
	c, err := client.Dial(testCtx(s.t), s.addr, client.Options{MinBackoff: 10 * time.Millisecond})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// ledger is what the healthy clients committed: every object's current
// data and serial.
type ledger struct {
	mu      sync.Mutex
	objects map[storage.Oid]revision
}

type revision struct {
	data   string
	serial storage.Tid
}

func newLedger() *ledger { return &ledger{objects: make(map[storage.Oid]revision)} }

// commit stores a new revision of oid through c and records it.
func (l *ledger) commit(t *testing.T, c *client.Client, oid storage.Oid, data string) {
	t.Helper()
	l.mu.Lock()
	prev := l.objects[oid]
	l.mu.Unlock()
	txn := c.Begin(client.TxnMeta{User: "robust", Description: data})
	txn.Store(oid, prev.serial, []byte(data))
	tid, err := txn.Commit(testCtx(t))
	if err != nil {
		t.Fatalf("commit %s of %s: %v", data, oid, err)
	}
	l.mu.Lock()
	l.objects[oid] = revision{data: data, serial: tid}
	l.mu.Unlock()
}

// verify loads every object through c and through the storage itself.
func (l *ledger) verify(t *testing.T, s *testServer, c *client.Client) {
	t.Helper()
	// A round trip first: invalidations sent before it are then applied.
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for oid, want := range l.objects {
		data, serial, err := c.Load(testCtx(t), oid)
		if err != nil || string(data) != want.data || serial != want.serial {
			t.Fatalf("client load %s = %q %s %v, want %q %s", oid, data, serial, err, want.data, want.serial)
		}
		data, serial, err = s.store.Load(oid)
		if err != nil || string(data) != want.data || serial != want.serial {
			t.Fatalf("storage load %s = %q %s %v, want %q %s", oid, data, serial, err, want.data, want.serial)
		}
	}
}

// exercise proves that c still works: it commits a new revision of oid and
// checks every object.
func (l *ledger) exercise(t *testing.T, s *testServer, c *client.Client, oid storage.Oid, data string) {
	t.Helper()
	l.commit(t, c, oid, data)
	l.verify(t, s, c)
}

// rawConn is a hand-driven ZEO connection for sending bad input.
type rawConn struct {
	t     *testing.T
	nc    net.Conn
	fr    *zeo.FrameReader
	enc   zeo.Encoding // announced by the server
	codec zeo.Codec    // after the handshake
}

// dialRaw connects and reads the server's announcement.
func (s *testServer) dialRaw() *rawConn {
	s.t.Helper()
	nc, err := net.DialTimeout("tcp", s.addr, patience)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { nc.Close() })
	r := &rawConn{t: s.t, nc: nc, fr: zeo.NewFrameReader(nc, 0)}
	nc.SetReadDeadline(time.Now().Add(patience))
	announce, err := r.fr.ReadFrame()
	if err != nil {
		s.t.Fatalf("read announcement: %v", err)
	}
	if r.enc, err = zeo.ParseAnnouncement(announce); err != nil {
		s.t.Fatal(err)
	}
	return r
}

func (r *rawConn) writeRaw(b []byte) {
	r.t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(patience))
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// handshake answers the announcement in the server's encoding.
func (r *rawConn) handshake() *rawConn {
	r.t.Helper()
	r.writeRaw(zeo.EncodeFrame(r.enc.Announcement()))
	r.codec = r.enc.Codec()
	return r
}

func (r *rawConn) send(m zeo.Message) {
	r.t.Helper()
	f, err := r.codec.EncodeFrame(m)
	if err != nil {
		r.t.Fatal(err)
	}
	r.writeRaw(f)
}

// readMsg reads the next message.
func (r *rawConn) readMsg() (zeo.Message, error) {
	r.nc.SetReadDeadline(time.Now().Add(patience))
	p, err := r.fr.ReadFrame()
	if err != nil {
		return zeo.Message{}, err
	}
	return r.codec.Decode(p)
}

// call sends a synchronous call and returns its reply, skipping the
// server's asynchronous calls.
func (r *rawConn) call(msgid int64, method string, args ...any) zeo.Message {
	r.t.Helper()
	r.send(zeo.NewCall(msgid, method, args...))
	for {
		m, err := r.readMsg()
		if err != nil {
			r.t.Fatalf("%s: no reply: %v", method, err)
		}
		if !m.IsReply() {
			continue
		}
		if id, ok := zeo.AsInt(m.MsgID); !ok || id != msgid {
			r.t.Fatalf("%s: reply to message %v, want %d", method, m.MsgID, msgid)
		}
		return m
	}
}

// callOK is call for a call that must succeed.
func (r *rawConn) callOK(msgid int64, method string, args ...any) any {
	r.t.Helper()
	m := r.call(msgid, method, args...)
	if m.IsError() {
		r.t.Fatalf("%s: error reply %v", method, m.Args)
	}
	return m.Args
}

// callError is call for a call that must get an error reply of class.
func (r *rawConn) callError(msgid int64, class, method string, args ...any) {
	r.t.Helper()
	m := r.call(msgid, method, args...)
	exc, ok := zeo.ExceptionFromMessage(m)
	if !ok || exc.Class != class {
		r.t.Fatalf("%s: reply %v, want an error reply %s", method, m, class)
	}
}

func (r *rawConn) register() *rawConn {
	r.t.Helper()
	if tid, ok := r.callOK(1, "register", "1", false).([]byte); !ok || len(tid) != 8 {
		r.t.Fatalf("register returned %v", tid)
	}
	return r
}

// expectClosed reads until the server closes the connection; the server
// may send frames first (what it queued before the bad input).
func (r *rawConn) expectClosed() {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(patience))
	for {
		_, err := r.fr.ReadFrame()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatalf("the server did not close the connection within %s", patience)
		}
		return // EOF or reset: closed
	}
}

// expectOpen proves the connection still works with a ping.
func (r *rawConn) expectOpen(msgid int64) {
	r.t.Helper()
	if v := r.callOK(msgid, "ping"); v != nil {
		r.t.Fatalf("ping returned %v", v)
	}
}

var z64 = make([]byte, 8)

func oidBytes(oid storage.Oid) []byte { return oid.Bytes() }

// frameHeader is a length prefix declaring n payload bytes.
func frameHeader(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// garbage returns a payload that does not decode in enc.
func garbage(enc zeo.Encoding) []byte {
	if enc == zeo.Msgpack {
		return []byte{0xc1, 0xc1, 0xff, 0x00} // 0xc1 is never used by msgpack
	}
	return []byte("\x80\x03(K\x01\x89\xffgarbage")
}

// notAMessage returns a well-formed value that is not a message tuple.
func notAMessage(t *testing.T, enc zeo.Encoding) []byte {
	var (
		p   []byte
		err error
	)
	switch enc {
	case zeo.Msgpack:
		p, err = zeo.MsgpackCodec{}.EncodeValue(zeo.Tuple{int64(1), false})
	default:
		p, err = zeo.PickleCodec{}.EncodeValue(zeo.Tuple{int64(1), false})
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadInputOnlyHurtsTheOffender sends each kind of bad input on its own
// connection, between two healthy clients, in both encodings.
func TestBadInputOnlyHurtsTheOffender(t *testing.T) {
	type badCase struct {
		name string
		// closes says the server must drop the connection; otherwise the
		// case checks its error replies and the connection must stay.
		closes bool
		run    func(t *testing.T, s *testServer, r *rawConn)
	}
	cases := []badCase{
		{"frame over the size limit", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.writeRaw(frameHeader(zeo.DefaultMaxFrameSize + 1))
		}},
		{"frame over the size limit as the handshake", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.writeRaw(frameHeader(0xffffffff))
		}},
		{"truncated frame then close", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.writeRaw(append(frameHeader(1000), "only a few bytes"...))
			if err := r.nc.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated handshake then close", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.writeRaw(append(frameHeader(2), 'Z'))
			if err := r.nc.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage message", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.writeRaw(zeo.EncodeFrame(garbage(r.enc)))
		}},
		{"garbage message before register", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake()
			r.writeRaw(zeo.EncodeFrame(garbage(r.enc)))
		}},
		{"empty message", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.writeRaw(frameHeader(0))
		}},
		{"value that is not a message tuple", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.writeRaw(zeo.EncodeFrame(notAMessage(t, r.enc)))
		}},
		{"unknown method", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.send(zeo.NewCall(2, "no_such_method"))
		}},
		{"unknown async method", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.send(zeo.NewAsync("no_such_method", int64(1)))
		}},
		{"call before register", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake()
			r.send(zeo.NewCall(1, "loadBefore", oidBytes(0), storage.MaxTid.Bytes()))
		}},
		{"async call before register", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake()
			r.send(zeo.NewAsync("tpc_begin", int64(1), []byte(""), []byte(""), zeo.NewDict(), nil, " "))
		}},
		{"register with a wrong storage name", false, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake()
			r.callError(1, zeo.ClassValueError, "register", "no-such-storage", false)
			// The connection stays, and a correct register then works.
			r.register()
			v := r.callOK(2, "loadBefore", oidBytes(1), storage.MaxTid.Bytes())
			if t3, ok := zeo.AsSeq(v); !ok || len(t3) != 3 {
				t.Fatalf("loadBefore after the failed register: %v", v)
			}
		}},
		{"register with wrong argument shapes", false, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake()
			r.callError(1, zeo.ClassTypeError, "register", "1")
			r.callError(2, zeo.ClassTypeError, "register", []byte("1"), false)
			r.register()
		}},
		{"loadBefore with a 3-byte oid", false, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.callError(2, zeo.ClassTypeError, "loadBefore", []byte{0, 0, 1}, storage.MaxTid.Bytes())
			r.expectOpen(3)
		}},
		{"sync calls with wrong argument shapes", false, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.callError(2, zeo.ClassTypeError, "loadBefore", oidBytes(0))
			r.callError(3, zeo.ClassTypeError, "loadBefore", "00000000", storage.MaxTid.Bytes())
			r.callError(4, zeo.ClassTypeError, "loadSerial", oidBytes(0), int64(7))
			r.callError(5, zeo.ClassTypeError, "new_oids", "many")
			r.callError(6, zeo.ClassTypeError, "history", nil)
			r.callError(7, zeo.ClassTypeError, "vote")
			r.callError(8, zeo.ClassTypeError, "getInvalidations", []byte("short"))
			r.expectOpen(9)
		}},
		{"loadBefore of a missing object", false, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.callError(2, zeo.ClassPOSKeyError, "loadBefore", oidBytes(0x7777), storage.MaxTid.Bytes())
			r.expectOpen(3)
		}},
		{"storea with a str as data", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.send(zeo.NewAsync("tpc_begin", int64(1), []byte("u"), []byte("d"), zeo.NewDict(), nil, " "))
			r.send(zeo.NewAsync("storea", oidBytes(0x100), z64, "not bytes", int64(1)))
		}},
		{"storea with a 3-byte oid", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.send(zeo.NewAsync("tpc_begin", int64(1), []byte("u"), []byte("d"), zeo.NewDict(), nil, " "))
			r.send(zeo.NewAsync("storea", []byte{1, 2, 3}, z64, []byte("data"), int64(1)))
		}},
		{"storea for an unknown transaction", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.send(zeo.NewAsync("storea", oidBytes(0x100), z64, []byte("data"), int64(424242)))
		}},
		{"storea for another transaction than the one begun", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.send(zeo.NewAsync("tpc_begin", int64(1), []byte("u"), []byte("d"), zeo.NewDict(), nil, " "))
			r.send(zeo.NewAsync("storea", oidBytes(0x100), z64, []byte("data"), int64(2)))
		}},
		{"checkCurrentSerialInTransaction for an unknown transaction", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.send(zeo.NewAsync("checkCurrentSerialInTransaction", oidBytes(0x100), z64, int64(99)))
		}},
		{"tpc_abort and vote of unknown transactions", false, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			if v := r.callOK(2, "tpc_abort", int64(5150)); v != nil {
				t.Fatalf("tpc_abort of an unknown transaction returned %v", v)
			}
			r.callError(3, zeo.ClassStorageTransactionError, "vote", int64(5150))
			r.callError(4, zeo.ClassStorageTransactionError, "tpc_finish", int64(5150))
			// An abandoned transaction, then an abort of another id: the
			// first transaction is unaffected and can still be aborted.
			r.send(zeo.NewAsync("tpc_begin", int64(6), []byte("u"), []byte("d"), zeo.NewDict(), nil, " "))
			r.send(zeo.NewAsync("storea", oidBytes(0x100), z64, []byte("data"), int64(6)))
			if v := r.callOK(5, "tpc_abort", int64(7)); v != nil {
				t.Fatalf("tpc_abort returned %v", v)
			}
			if v := r.callOK(6, "tpc_abort", int64(6)); v != nil {
				t.Fatalf("tpc_abort returned %v", v)
			}
			if v := r.callOK(7, "tpc_abort", int64(6)); v != nil {
				t.Fatalf("second tpc_abort returned %v", v)
			}
		}},
		{"heartbeat is ignored", false, func(t *testing.T, s *testServer, r *rawConn) {
			r.handshake().register()
			r.send(zeo.NewHeartbeat())
			r.expectOpen(2)
		}},
		{"handshake with a wrong version", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.writeRaw(zeo.EncodeFrame([]byte{byte(r.enc), '4'}))
		}},
		{"handshake with an unknown encoding", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.writeRaw(zeo.EncodeFrame([]byte("X5")))
		}},
		{"handshake that is a message", true, func(t *testing.T, s *testServer, r *rawConn) {
			f, err := r.enc.Codec().EncodeFrame(zeo.NewCall(1, "register", "1", false))
			if err != nil {
				t.Fatal(err)
			}
			r.writeRaw(f)
		}},
		{"ruok probe", true, func(t *testing.T, s *testServer, r *rawConn) {
			r.writeRaw(zeo.EncodeFrame([]byte(zeo.RuokProbe)))
			r.nc.SetReadDeadline(time.Now().Add(patience))
			js, err := r.fr.ReadFrame()
			if err != nil || !bytes.HasPrefix(js, []byte(`{"1": {`)) {
				t.Fatalf("ruok answer %q %v", js, err)
			}
		}},
	}
	for _, protocol := range []string{ProtocolPickle, ProtocolMsgpack} {
		t.Run(protocol, func(t *testing.T) {
			s := startTestServer(t, protocol, 0)
			l := newLedger()
			before := s.dialClient()
			l.exercise(t, s, before, 1, "start")
			parent := s.t
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					s.t = t
					defer func() { s.t = parent }()
					s.waitConns(1)
					r := s.dialRaw()
					tc.run(t, s, r)
					if tc.closes {
						r.expectClosed()
						s.waitConns(1)
					} else {
						r.expectOpen(1000)
					}
					// The client connected before still works, and so
					// does one connected after; each commits and sees
					// the other's commit.
					l.exercise(t, s, before, 1, fmt.Sprintf("before %d", i))
					after := s.dialClient()
					l.exercise(t, s, after, 2, fmt.Sprintf("after %d", i))
					l.verify(t, s, before)
					after.Close()
					r.nc.Close()
				})
			}
		})
	}
}

// TestSlowReaderIsDropped: a client that stops reading while invalidations
// pile up is disconnected once its queue passes MaxQueuedBytes, and the
// others, one of them reading every invalidation, are unaffected.
func TestSlowReaderIsDropped(t *testing.T) {
	const maxQueued = 16 << 10
	s := startTestServer(t, ProtocolPickle, maxQueued)
	l := newLedger()
	var (
		mu   sync.Mutex
		seen []storage.Tid
	)
	watcher, err := client.Dial(testCtx(t), s.addr, client.Options{OnInvalidate: func(inv client.Invalidation) {
		mu.Lock()
		seen = append(seen, inv.Tid)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	writer := s.dialClient()

	// The slow client's kernel buffers are made small, so that the
	// server's queue, not the kernel, is what fills up.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	nc, err := d.DialContext(testCtx(t), "tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	slow := &rawConn{t: t, nc: nc, fr: zeo.NewFrameReader(nc, 0)}
	nc.SetReadDeadline(time.Now().Add(patience))
	announce, err := slow.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if slow.enc, err = zeo.ParseAnnouncement(announce); err != nil {
		t.Fatal(err)
	}
	slow.handshake().register()
	s.waitConns(3)
	s.svc.mu.Lock()
	for c := range s.svc.conns {
		if c.nc.RemoteAddr().String() == nc.LocalAddr().String() {
			if err := c.nc.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
				t.Error(err)
			}
		}
	}
	s.svc.mu.Unlock()

	// The slow client now reads nothing. Each transaction's invalidation
	// lists 200 oids, about 2 KB.
	oids := make([]storage.Oid, 0, 200)
	for len(oids) < cap(oids) {
		batch, err := writer.NewOids(testCtx(t), 100)
		if err != nil {
			t.Fatal(err)
		}
		oids = append(oids, batch...)
	}
	serials := make(map[storage.Oid]storage.Tid)
	var tids []storage.Tid
	deadline := time.Now().Add(patience)
	for n := 0; s.connCount() == 3; n++ {
		if time.Now().After(deadline) {
			t.Fatalf("the slow client is still connected after %d transactions", n)
		}
		txn := writer.Begin(client.TxnMeta{})
		for _, oid := range oids {
			txn.Store(oid, serials[oid], []byte("x"))
		}
		tid, err := txn.Commit(testCtx(t))
		if err != nil {
			t.Fatalf("commit %d: %v", n, err)
		}
		for _, oid := range oids {
			serials[oid] = tid
		}
		tids = append(tids, tid)
	}
	t.Logf("slow client dropped after %d transactions", len(tids))
	s.waitConns(2)
	slow.expectClosed()

	// The watcher got every invalidation, in order.
	if err := watcher.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := append([]storage.Tid(nil), seen...)
	mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(tids) {
		t.Fatalf("the watcher saw invalidations %v, want %v", got, tids)
	}
	l.exercise(t, s, writer, 1<<40, "after the slow client")
	l.verify(t, s, watcher)
	for _, oid := range oids {
		if _, serial, err := watcher.Load(testCtx(t), oid); err != nil || serial != serials[oid] {
			t.Fatalf("load %s = %s %v, want %s", oid, serial, err, serials[oid])
		}
	}
}

// TestDisconnectReleasesCommitLock: a connection that goes away after its
// vote succeeded holds up every commit that touches its objects (and the
// publication of later ones); the server must abort its transaction so
// that others can commit, and nothing of it must remain.
func TestDisconnectReleasesCommitLock(t *testing.T) {
	for _, protocol := range []string{ProtocolPickle, ProtocolMsgpack} {
		t.Run(protocol, func(t *testing.T) {
			s := startTestServer(t, protocol, 0)
			l := newLedger()
			healthy := s.dialClient()
			l.exercise(t, s, healthy, 1, "start")
			lastBefore := s.store.LastTransaction()
			sizeBefore := s.store.Size()

			r := s.dialRaw().handshake().register()
			r.send(zeo.NewAsync("tpc_begin", int64(1), []byte("u"), []byte("dropped"), zeo.NewDict(), nil, " "))
			r.send(zeo.NewAsync("storea", oidBytes(1), l.objects[1].serial.Bytes(), []byte("never committed"), int64(1)))
			r.send(zeo.NewAsync("storea", oidBytes(0x55), z64, []byte("never committed either"), int64(1)))
			if v := r.callOK(2, "vote", int64(1)); v != nil {
				if seq, ok := zeo.AsSeq(v); !ok || len(seq) != 0 {
					t.Fatalf("vote returned %v", v)
				}
			}
			// A commit by another client of an object the voted
			// transaction writes waits for its decision.
			committed := make(chan error, 1)
			go func() {
				txn := healthy.Begin(client.TxnMeta{Description: "waits for the lock"})
				txn.Store(1, l.objects[1].serial, []byte("after the dropped one"))
				txn.Store(2, 0, []byte("second object"))
				_, err := txn.Commit(testCtx(t))
				committed <- err
			}()
			deadline := time.Now().Add(patience)
			for s.svc.stats.waiting.Load() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the second commit's vote never waited for the voted transaction")
				}
				time.Sleep(time.Millisecond)
			}
			select {
			case err := <-committed:
				t.Fatalf("a commit went through while another transaction held the lock after its vote: %v", err)
			default:
			}
			r.nc.Close()
			select {
			case err := <-committed:
				if err != nil {
					t.Fatalf("commit after the voter went away: %v", err)
				}
			case <-time.After(patience):
				t.Fatal("the commit lock was not released when the voter went away")
			}
			s.waitConns(1)
			if _, _, err := s.store.Load(0x55); !errors.Is(err, storage.ErrNoObject) {
				t.Fatalf("an object of the dropped transaction exists: %v", err)
			}
			if data, _, _ := s.store.Load(1); string(data) != "after the dropped one" {
				t.Fatalf("object 1 = %q after the dropped transaction", data)
			}
			if s.store.LastTransaction() <= lastBefore || s.store.Size() <= sizeBefore {
				t.Fatal("the waiting commit is not in the storage")
			}
			data, serial, err := healthy.Load(testCtx(t), 2)
			if err != nil || string(data) != "second object" {
				t.Fatalf("load 2 = %q %v", data, err)
			}
			l.mu.Lock()
			l.objects[1] = revision{data: "after the dropped one", serial: serial}
			l.objects[2] = revision{data: "second object", serial: serial}
			l.mu.Unlock()
			l.exercise(t, s, healthy, 1, "after")
		})
	}
}

// TestDisconnectWhileWaitingForTheLock: a connection whose vote waits for
// a voted transaction writing the same object (holding the commit lock
// meanwhile) goes away; the voted one then finishes and the next commits
// proceed.
func TestDisconnectWhileWaitingForTheLock(t *testing.T) {
	s := startTestServer(t, ProtocolPickle, 0)
	l := newLedger()
	healthy := s.dialClient()
	l.exercise(t, s, healthy, 1, "start")

	holder := s.dialRaw().handshake().register()
	holder.send(zeo.NewAsync("tpc_begin", int64(1), []byte(""), []byte("holder"), zeo.NewDict(), nil, " "))
	holder.send(zeo.NewAsync("storea", oidBytes(3), z64, []byte("holder's"), int64(1)))
	holder.callOK(2, "vote", int64(1))

	waiter := s.dialRaw().handshake().register()
	waiter.send(zeo.NewAsync("tpc_begin", int64(1), []byte(""), []byte("waiter"), zeo.NewDict(), nil, " "))
	waiter.send(zeo.NewAsync("storea", oidBytes(3), z64, []byte("waiter's"), int64(1)))
	waiter.send(zeo.NewAsync("storea", oidBytes(4), z64, []byte("waiter's"), int64(1)))
	waiter.send(zeo.NewCall(2, "vote", int64(1)))
	// Wait until the server has the waiter's vote waiting for the lock.
	deadline := time.Now().Add(patience)
	for s.svc.stats.waiting.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the second vote never waited for the lock")
		}
		time.Sleep(time.Millisecond)
	}
	waiter.nc.Close()
	s.waitConns(2)

	tid, ok := holder.callOK(3, "tpc_finish", int64(1)).([]byte)
	if !ok || len(tid) != 8 {
		t.Fatalf("tpc_finish returned %v", tid)
	}
	l.mu.Lock()
	l.objects[3] = revision{data: "holder's", serial: storage.Tid(binary.BigEndian.Uint64(tid))}
	l.mu.Unlock()
	l.exercise(t, s, healthy, 1, "after")
	if _, _, err := s.store.Load(4); !errors.Is(err, storage.ErrNoObject) {
		t.Fatalf("the waiter's object exists: %v", err)
	}
	// Nothing is left waiting.
	deadline = time.Now().Add(patience)
	for s.svc.stats.waiting.Load() != 0 || s.svc.stats.activeTxns.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("waiting %d, active transactions %d", s.svc.stats.waiting.Load(), s.svc.stats.activeTxns.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestManyLoadersWhileCommitting: 50 connections load in a loop while one
// client commits in a loop; every load must return a revision at least as
// new as the one that client saw before, whose data matches its serial.
func TestManyLoadersWhileCommitting(t *testing.T) {
	const (
		loaders = 50
		objects = 20
		commits = 60
	)
	if testing.Short() {
		t.Skip("slow")
	}
	s := startTestServer(t, ProtocolPickle, 0)
	writer := s.dialClient()
	// data names the commit that wrote it; the writer records which tid
	// each commit got.
	var tidOf sync.Map // data string → tid
	serials := make(map[storage.Oid]storage.Tid)
	commitRound := func(n int) {
		txn := writer.Begin(client.TxnMeta{})
		var oids []storage.Oid
		for oid := storage.Oid(n % 3); oid < objects; oid += 3 {
			oids = append(oids, oid)
			txn.Store(oid, serials[oid], []byte(fmt.Sprintf("round %d", n)))
		}
		if n == 0 {
			for oid := storage.Oid(0); oid < objects; oid++ {
				if oid%3 != 0 {
					oids = append(oids, oid)
					txn.Store(oid, 0, []byte("round 0"))
				}
			}
		}
		tid, err := txn.Commit(testCtx(t))
		if err != nil {
			t.Fatalf("commit %d: %v", n, err)
		}
		tidOf.Store(fmt.Sprintf("round %d", n), tid)
		for _, oid := range oids {
			serials[oid] = tid
		}
	}
	commitRound(0)

	var (
		wg    sync.WaitGroup
		stop  atomic.Bool
		loads atomic.Int64
	)
	errs := make(chan error, loaders)
	observed := make([]map[string]storage.Tid, loaders)
	clients := make([]*client.Client, loaders)
	for i := range clients {
		// Half the loaders cache, half go to the server every time.
		opts := client.Options{CacheBytes: -1}
		if i%2 == 0 {
			opts.CacheBytes = 0
		}
		c, err := client.Dial(testCtx(t), s.addr, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	// One context for all loads: testCtx registers a cleanup per call.
	ctx := testCtx(t)
	defer func() { stop.Store(true); wg.Wait() }() // on failure too
	for i, c := range clients {
		seen := make(map[string]storage.Tid) // data → serial it came with
		observed[i] = seen
		wg.Add(1)
		go func() {
			defer wg.Done()
			newest := make(map[storage.Oid]storage.Tid)
			for n := 0; !stop.Load() || n < 10; n++ {
				oid := storage.Oid((n*7 + i) % objects)
				data, serial, err := c.Load(ctx, oid)
				if err != nil {
					errs <- fmt.Errorf("loader %d: load %s: %w", i, oid, err)
					return
				}
				loads.Add(1)
				// Which tid a commit got is known only once the writer
				// hears back, possibly after this load: check at the end.
				if prev, ok := seen[string(data)]; ok && prev != serial {
					errs <- fmt.Errorf("loader %d: data %q came with serials %s and %s", i, data, prev, serial)
					return
				}
				seen[string(data)] = serial
				if serial < newest[oid] {
					errs <- fmt.Errorf("loader %d: %s went back from %s to %s", i, oid, newest[oid], serial)
					return
				}
				newest[oid] = serial
			}
		}()
	}
	for n := 1; n <= commits; n++ {
		commitRound(n)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d loads during %d commits", loads.Load(), commits)
	for i, seen := range observed {
		for data, serial := range seen {
			if want, ok := tidOf.Load(data); !ok || want.(storage.Tid) != serial {
				t.Errorf("loader %d: data %q came with serial %s; that commit got %v", i, data, serial, want)
			}
		}
	}
	for oid := storage.Oid(0); oid < objects; oid++ {
		if _, serial, err := s.store.Load(oid); err != nil || serial != serials[oid] {
			t.Fatalf("storage load %s = %s %v, want %s", oid, serial, err, serials[oid])
		}
	}
	if n := s.connCount(); n != loaders+1 {
		t.Fatalf("%d connections, want %d: some were dropped", n, loaders+1)
	}
}

// A client may write several calls before reading: the server answers all
// of them, in order, even when the last call it read needs no answer.
func TestPipelinedCallsAreAllAnswered(t *testing.T) {
	for _, protocol := range []string{ProtocolPickle, ProtocolMsgpack} {
		t.Run(protocol, func(t *testing.T) {
			s := startTestServer(t, protocol, 0)
			r := s.dialRaw().handshake().register()
			var batch []byte
			for _, m := range []zeo.Message{
				zeo.NewCall(2, "ping"),
				zeo.NewCall(3, "lastTransaction"),
				zeo.NewCall(4, "loadBefore", z64, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
				zeo.NewCall(5, "ping"),
				zeo.NewAsync("set_client_label", "pipelined"),
			} {
				f, err := r.codec.EncodeFrame(m)
				if err != nil {
					t.Fatal(err)
				}
				batch = append(batch, f...)
			}
			r.writeRaw(batch)
			for want := int64(2); want <= 5; want++ {
				m, err := r.readMsg()
				if err != nil {
					t.Fatalf("no answer to call %d: %v", want, err)
				}
				if id, ok := zeo.AsInt(m.MsgID); !m.IsReply() || !ok || id != want {
					t.Fatalf("got %v, want the reply to call %d", m, want)
				}
			}
			r.expectOpen(6)
		})
	}
}

// Answers to calls read together with a tpc_finish that has to wait (for
// a transaction voted before it) are not held back by that wait.
func TestAnswersBeforeAWaitingFinishAreNotHeld(t *testing.T) {
	s := startTestServer(t, ProtocolPickle, 0)
	vote := func(r *rawConn, oid storage.Oid) {
		t.Helper()
		r.send(zeo.NewAsync("tpc_begin", int64(1), []byte("u"), []byte("d"), zeo.NewDict(), nil, " "))
		r.send(zeo.NewAsync("storea", oidBytes(oid), z64, []byte("data"), int64(1)))
		if v := r.callOK(2, "vote", int64(1)); v != nil {
			if seq, ok := zeo.AsSeq(v); !ok || len(seq) != 0 {
				t.Fatalf("vote returned %v", v)
			}
		}
	}
	first := s.dialRaw().handshake().register()
	vote(first, 1)
	second := s.dialRaw().handshake().register()
	vote(second, 2) // behind the first: its finish waits for the first's
	var batch []byte
	for _, m := range []zeo.Message{zeo.NewCall(3, "ping"), zeo.NewCall(4, "tpc_finish", int64(1))} {
		f, err := second.codec.EncodeFrame(m)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, f...)
	}
	second.writeRaw(batch)
	m, err := second.readMsg()
	if err != nil {
		t.Fatalf("no answer to the ping read with the waiting tpc_finish: %v", err)
	}
	if id, _ := zeo.AsInt(m.MsgID); !m.IsReply() || id != 3 {
		t.Fatalf("got %v, want the ping's reply", m)
	}
	first.callOK(5, "tpc_finish", int64(1))
	for {
		m, err := second.readMsg()
		if err != nil {
			t.Fatalf("no answer to the tpc_finish once the first transaction finished: %v", err)
		}
		if !m.IsReply() {
			continue // info, invalidations
		}
		if id, _ := zeo.AsInt(m.MsgID); id != 4 || m.IsError() {
			t.Fatalf("got %v, want the tpc_finish's reply", m)
		}
		return
	}
}

// A long run of pipelined loads, whose answers exceed what the server
// holds back, is answered completely and in order while the client is
// still writing.
func TestLongPipelineIsAnsweredInOrder(t *testing.T) {
	s := startTestServer(t, ProtocolPickle, 0)
	c := s.dialClient()
	txn := c.Begin(client.TxnMeta{})
	txn.Store(1, 0, bytes.Repeat([]byte("x"), 1000))
	if _, err := txn.Commit(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	r := s.dialRaw().handshake().register()
	const calls = 2000 // about 2 MB of answers
	var batch []byte
	for i := range calls {
		f, err := r.codec.EncodeFrame(zeo.NewCall(int64(10+i), "loadBefore", oidBytes(1), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}))
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, f...)
	}
	written := make(chan error, 1)
	go func() {
		r.nc.SetWriteDeadline(time.Now().Add(patience))
		_, err := r.nc.Write(batch)
		written <- err
	}()
	for i := range calls {
		m, err := r.readMsg()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if id, _ := zeo.AsInt(m.MsgID); !m.IsReply() || m.IsError() || id != int64(10+i) {
			t.Fatalf("answer %d: got %v, want the reply to call %d", i, m, 10+i)
		}
	}
	if err := <-written; err != nil {
		t.Fatalf("write: %v", err)
	}
	r.expectOpen(1)
}
