package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/zrs-go/zrs/wire/zeo"
)

// scriptedServer accepts one connection, does the Z5 handshake and hands
// the test the connection with a frame reader for the client's calls.
func scriptedServer(t *testing.T) (addr string, accepted <-chan *serverSide) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan *serverSide, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { nc.Close() })
		s := &serverSide{nc: nc, fr: zeo.NewFrameReader(nc, 0)}
		if _, err := nc.Write(zeo.EncodeFrame([]byte("Z5"))); err != nil {
			return
		}
		if _, err := s.fr.ReadFrame(); err != nil {
			return
		}
		ch <- s
	}()
	return ln.Addr().String(), ch
}

type serverSide struct {
	nc net.Conn
	fr *zeo.FrameReader
}

// expectCall reads the client's next call and returns its message id.
func (s *serverSide) expectCall(t *testing.T, method string) int64 {
	t.Helper()
	p, err := s.fr.ReadFrame()
	if err != nil {
		t.Error(err)
		return 0
	}
	m, err := zeo.PickleCodec{}.Decode(p)
	if err != nil || m.Method != method {
		t.Errorf("got %v, %v; want a %s call", m, err, method)
		return 0
	}
	id, _ := zeo.AsInt(m.MsgID)
	return id
}

func frame(t *testing.T, m zeo.Message) []byte {
	t.Helper()
	f, err := zeo.PickleCodec{}.EncodeFrame(m)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func dialScripted(t *testing.T, addr string, onNotify func(string, []any)) *conn {
	t.Helper()
	if onNotify == nil {
		onNotify = func(string, []any) {}
	}
	c, err := dialConn(context.Background(), addr, onNotify)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.close(nil) })
	return c
}

// A caller reading its own reply gives up when its context ends, even in
// the middle of a frame; the next reader finishes that frame.
func TestCancelledReaderLeavesStreamInSync(t *testing.T) {
	addr, accepted := scriptedServer(t)
	c := dialScripted(t, addr, nil)
	s := <-accepted
	served := make(chan struct{})
	go func() {
		defer close(served)
		id1 := s.expectCall(t, "ping")
		reply1 := frame(t, zeo.NewReply(id1, "late"))
		if _, err := s.nc.Write(reply1[:6]); err != nil {
			t.Error(err)
		}
		id2 := s.expectCall(t, "ping")
		if _, err := s.nc.Write(append(reply1[6:], frame(t, zeo.NewReply(id2, "second"))...)); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.call(ctx, "ping"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first call: got %v, want the context's deadline", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	v, err := c.call(ctx2, "ping")
	if err != nil || v != "second" {
		t.Fatalf("second call: got %v, %v", v, err)
	}
	<-served
}

// When no call is made, the background reader delivers notifications; a
// call interrupts it, even in the middle of a frame, without losing or
// reordering anything.
func TestBackgroundReaderHandsOver(t *testing.T) {
	addr, accepted := scriptedServer(t)
	var mu sync.Mutex
	var notes []string
	noted := make(chan struct{}, 10)
	c := dialScripted(t, addr, func(method string, args []any) {
		mu.Lock()
		notes = append(notes, args[0].(string))
		mu.Unlock()
		noted <- struct{}{}
	})
	s := <-accepted
	note := func(text string) []byte { return frame(t, zeo.NewAsync("info", text)) }
	if _, err := s.nc.Write(note("idle")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-noted:
	case <-time.After(5 * time.Second):
		t.Fatal("the background reader did not deliver a notification")
	}
	// Half a notification: the background reader is inside a frame when
	// the call interrupts it.
	split := note("split")
	if _, err := s.nc.Write(split[:7]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	served := make(chan struct{})
	go func() {
		defer close(served)
		id := s.expectCall(t, "ping")
		if _, err := s.nc.Write(append(append(split[7:], note("before reply")...), frame(t, zeo.NewReply(id, "pong"))...)); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.call(ctx, "ping")
	if err != nil || v != "pong" {
		t.Fatalf("call: got %v, %v", v, err)
	}
	<-served
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"idle", "split", "before reply"}; len(notes) != len(want) || notes[0] != want[0] || notes[1] != want[1] || notes[2] != want[2] {
		t.Fatalf("notifications %q, want %q", notes, want)
	}
}

// Concurrent calls on one connection all get their own replies, whoever
// reads them, whatever the order of the replies.
func TestConcurrentCallsShareTheReadSide(t *testing.T) {
	addr, accepted := scriptedServer(t)
	c := dialScripted(t, addr, nil)
	s := <-accepted
	const calls = 50
	go func() {
		var ids []int64
		for range calls {
			ids = append(ids, s.expectCall(t, "echo"))
		}
		for i := len(ids) - 1; i >= 0; i-- { // answer in reverse order
			if _, err := s.nc.Write(frame(t, zeo.NewReply(ids[i], ids[i]))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = make(map[any]bool)
	)
	for range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			v, err := c.call(ctx, "echo")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[v] {
				t.Errorf("two calls got the reply to call %v", v)
			}
			seen[v] = true
		}()
	}
	wg.Wait()
}

// A context shared by several calls is watched once; its cancellation
// still interrupts the call reading at the time.
func TestSharedContextCancelsReader(t *testing.T) {
	addr, accepted := scriptedServer(t)
	c := dialScripted(t, addr, nil)
	s := <-accepted
	served := make(chan struct{})
	go func() {
		defer close(served)
		id := s.expectCall(t, "ping")
		if _, err := s.nc.Write(frame(t, zeo.NewReply(id, "first"))); err != nil {
			t.Error(err)
		}
		s.expectCall(t, "ping") // left unanswered
		// A call with a context cancelled already is not sent at all.
		id = s.expectCall(t, "ping")
		if _, err := s.nc.Write(frame(t, zeo.NewReply(id, "later"))); err != nil {
			t.Error(err)
		}
	}()
	shared, cancel := context.WithCancel(context.Background())
	if v, err := c.call(shared, "ping"); err != nil || v != "first" {
		t.Fatalf("first call: got %v, %v", v, err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.call(shared, "ping"); !errors.Is(err, context.Canceled) {
		t.Fatalf("second call: got %v, want context.Canceled", err)
	}
	if _, err := c.call(shared, "ping"); !errors.Is(err, context.Canceled) {
		t.Fatalf("call with the cancelled context: got %v, want context.Canceled", err)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if v, err := c.call(ctx, "ping"); err != nil || v != "later" {
		t.Fatalf("call with a new context: got %v, %v", v, err)
	}
	<-served
}

// A server that sends more than the socket holds before it reads again
// is read from while callers are still writing large calls: nobody
// holds the read side while writing, and the background reader drains
// the connection.
func TestReadsWhileCallersWrite(t *testing.T) {
	addr, accepted := scriptedServer(t)
	c := dialScripted(t, addr, nil)
	s := <-accepted
	const callers = 8
	big := make([]byte, 1<<20)
	served := make(chan struct{})
	gotFirst := make(chan struct{})
	go func() {
		defer close(served)
		id := s.expectCall(t, "first")
		close(gotFirst)
		note := frame(t, zeo.NewAsync("info", string(make([]byte, 60<<10))))
		for range 16 << 20 / len(note) {
			if _, err := s.nc.Write(note); err != nil {
				t.Error(err)
				return
			}
		}
		if _, err := s.nc.Write(frame(t, zeo.NewReply(id, nil))); err != nil {
			t.Error(err)
		}
		for range callers {
			id := s.expectCall(t, "big")
			if _, err := s.nc.Write(frame(t, zeo.NewReply(id, nil))); err != nil {
				t.Error(err)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := c.call(ctx, "first"); err != nil {
			t.Error(err)
		}
	}()
	// The big calls go out only after "first", which the server answers
	// after flooding notifications: they are written while the
	// connection must keep reading.
	select {
	case <-gotFirst:
	case <-ctx.Done():
		t.Fatal("the server never got the first call")
	}
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.call(ctx, "big", big); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	<-served
}

// Calls made while another caller's write is blocked queue behind it and
// go out next; when that write fails, every one of them fails too rather
// than waiting for a reply to a call never sent.
func TestCallsQueuedBehindAFailedWriteFail(t *testing.T) {
	addr, accepted := scriptedServer(t)
	c := dialScripted(t, addr, nil)
	s := <-accepted
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Far more than the socket buffers hold: the write blocks while the
	// server reads nothing.
	huge := make([]byte, 64<<20)
	errs := make(chan error, 9)
	go func() {
		_, err := c.call(ctx, "huge", huge)
		errs <- err
	}()
	waitUntil(t, func() bool {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.writing
	})
	for range 8 {
		go func() {
			_, err := c.call(ctx, "small")
			errs <- err
		}()
	}
	waitUntil(t, func() bool {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return len(c.wqueue) == 8
	})
	s.nc.Close()
	for range 9 {
		if err := <-errs; !errors.Is(err, ErrDisconnected) {
			t.Fatalf("call got %v, want ErrDisconnected", err)
		}
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
