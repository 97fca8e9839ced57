package node

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"
)

// recordingWriter keeps what is written to it and signals each write.
type recordingWriter struct {
	mu     sync.Mutex
	writes [][]byte
	wrote  chan struct{}
}

func newRecordingWriter() *recordingWriter {
	return &recordingWriter{wrote: make(chan struct{}, 1000)}
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, bytes.Clone(p))
	w.mu.Unlock()
	w.wrote <- struct{}{}
	return len(p), nil
}

// written returns everything written so far, concatenated.
func (w *recordingWriter) written() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(bytes.Join(w.writes, nil))
}

// waitFor waits until the written bytes are want.
func (w *recordingWriter) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for w.written() != want {
		select {
		case <-w.wrote:
		case <-deadline:
			t.Fatalf("written %q, want %q", w.written(), want)
		}
	}
}

// runQueue starts a queue's writer on w; done gets what writeTo returns.
func runQueue(w io.Writer, delay time.Duration) (q *outQueue, done <-chan error) {
	q = newOutQueue(w, 1<<20)
	q.delay = delay
	ch := make(chan error, 1)
	go func() { ch <- q.writeTo() }()
	return q, ch
}

// startQueue runs a queue on a recording writer, closed at cleanup.
func startQueue(t *testing.T, delay time.Duration) (*outQueue, *recordingWriter) {
	t.Helper()
	w := newRecordingWriter()
	q, done := runQueue(w, delay)
	t.Cleanup(func() {
		q.close()
		if err := <-done; err != nil {
			t.Errorf("writeTo: %v", err)
		}
	})
	return q, w
}

func TestOutQueueNotificationWaitsForTheNextReplyAfterAWrite(t *testing.T) {
	q, w := startQueue(t, time.Hour)
	if err := q.send([]byte("reply1;")); err != nil {
		t.Fatal(err)
	}
	if err := q.pushNotification([]byte("inval;")); err != nil {
		t.Fatal(err)
	}
	if got := w.written(); got != "reply1;" {
		t.Fatalf("written %q before the next reply: a notification right after a write must wait", got)
	}
	if err := q.send([]byte("reply2;")); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "reply1;inval;reply2;")
}

func TestOutQueueNotificationAloneGoesOutAfterTheDelay(t *testing.T) {
	q, w := startQueue(t, 20*time.Millisecond)
	if err := q.send([]byte("reply;")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a;", "b;", "c;"} {
		if err := q.pushNotification([]byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	w.waitFor(t, "reply;a;b;c;")
}

func TestOutQueueNotificationAfterQuietGoesOutAtOnce(t *testing.T) {
	q, w := startQueue(t, time.Hour)
	// Nothing was ever written: the connection has been quiet for longer
	// than any delay.
	if err := q.pushNotification([]byte("inval;")); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "inval;")
}

func TestOutQueueHeldRepliesGoOutWithTheFlush(t *testing.T) {
	q, w := startQueue(t, time.Hour)
	for _, r := range []string{"r1;", "r2;"} {
		if err := q.hold([]byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.written(); got != "" {
		t.Fatalf("held replies written before the flush: %q", got)
	}
	if err := q.send([]byte("r3;")); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "r1;r2;r3;")
	if err := q.hold([]byte("r4;")); err != nil {
		t.Fatal(err)
	}
	if err := q.flush(); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "r1;r2;r3;r4;")
}

func TestOutQueueCloseDrainsWaitingFrames(t *testing.T) {
	w := newRecordingWriter()
	q, done := runQueue(w, time.Hour)
	if err := q.send([]byte("reply;")); err != nil {
		t.Fatal(err)
	}
	if err := q.pushNotification([]byte("inval;")); err != nil {
		t.Fatal(err)
	}
	if err := q.hold([]byte("held;")); err != nil {
		t.Fatal(err)
	}
	q.close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := w.written(); got != "reply;inval;held;" {
		t.Fatalf("written %q after close, want everything queued", got)
	}
}

func TestOutQueueHoldSendsPastItsLimit(t *testing.T) {
	q, w := startQueue(t, time.Hour)
	big := bytes.Repeat([]byte("x"), holdLimit/2+1)
	if err := q.hold(big); err != nil {
		t.Fatal(err)
	}
	if got := w.written(); got != "" {
		t.Fatalf("written %d bytes: the first frame fits the limit and should be held", len(got))
	}
	if err := q.hold(big); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, string(big)+string(big))
}

// gatedWriter blocks each write until the test opens the gate.
type gatedWriter struct {
	*recordingWriter
	entered chan struct{}
	gate    chan struct{}
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.gate
	return w.recordingWriter.Write(p)
}

// A flush while the writer goroutine is busy leaves the held frames to it:
// they go out right after its write, with nothing else happening.
func TestOutQueueFlushWhileWritingHandsOverHeldFrames(t *testing.T) {
	w := &gatedWriter{recordingWriter: newRecordingWriter(), entered: make(chan struct{}, 10), gate: make(chan struct{})}
	q, done := runQueue(w, time.Hour)
	if err := q.push([]byte("inval;")); err != nil {
		t.Fatal(err)
	}
	<-w.entered // the writer goroutine is writing
	if err := q.hold([]byte("reply;")); err != nil {
		t.Fatal(err)
	}
	if err := q.flush(); err != nil {
		t.Fatal(err)
	}
	close(w.gate)
	w.waitFor(t, "inval;reply;")
	q.close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
