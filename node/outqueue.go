package node

import (
	"bufio"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/zrs-go/zrs/wire/zeo"
)

// errQueueFull is returned when a peer does not read fast enough: its
// connection is dropped rather than letting memory grow without bound.
var errQueueFull = errors.New("outgoing queue full: peer is not reading")

// notificationDelay bounds how often notifications alone cause a write to
// one connection. Under a high commit rate every connection receives an
// invalidation per commit; writing each on its own would cost the server
// a system call and the client a read per commit and per client, so a
// notification arriving within this long of the previous write waits and
// goes out with whatever follows. A reply is never delayed: it takes the
// waiting notifications with it, in order, so a client still learns of
// every invalidation before any answer computed after it.
const notificationDelay = time.Millisecond

// outQueue holds the frames waiting to be written to one connection, in
// the order they were produced. Producers other than the connection's
// reader and its vote (see send) never block on the network: they queue,
// and the writer goroutine (writeTo) writes.
type outQueue struct {
	w      io.Writer
	mu     sync.Mutex
	frames [][]byte
	bytes  int
	limit  int
	closed bool
	// due is set when the queued frames should be written now; frames
	// queued by pushNotification or hold wait without it.
	due bool
	// writing is set while a goroutine writes to w; frames produced
	// meanwhile queue behind what it writes.
	writing   bool
	delay     time.Duration // notificationDelay, but for tests
	lastWrite time.Time
	timer     *time.Timer // makes delayed notifications due
	armed     bool        // timer is pending
	err       error       // the first write error; nothing more is written
	wake      chan struct{}
}

func newOutQueue(w io.Writer, limit int) *outQueue {
	q := &outQueue{w: w, limit: limit, delay: notificationDelay, wake: make(chan struct{}, 1)}
	q.timer = time.AfterFunc(time.Hour, q.notificationsDue)
	q.timer.Stop()
	return q
}

// appendLocked queues frames, together, or says why it cannot: the queue
// is closed or over its limit, or a write failed.
func (q *outQueue) appendLocked(frames [][]byte) error {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	switch {
	case q.err != nil:
		return q.err
	case q.closed:
		return io.ErrClosedPipe
	case q.bytes+n > q.limit && q.bytes > 0:
		return errQueueFull
	}
	q.frames = append(q.frames, frames...)
	q.bytes += n
	return nil
}

// push queues frames to be written at once, together, by the writer.
func (q *outQueue) push(frames ...[]byte) error {
	q.mu.Lock()
	err := q.appendLocked(frames)
	if err == nil {
		q.due = true
	}
	q.mu.Unlock()
	if err == nil {
		q.signal()
	}
	return err
}

// pushNotification queues an asynchronous message, written at once if
// nothing was written to the connection for the notification delay, otherwise
// when that time is up or with the next reply, whichever comes first.
func (q *outQueue) pushNotification(frame []byte) error {
	q.mu.Lock()
	err := q.appendLocked([][]byte{frame})
	wake := false
	if err == nil && !q.due {
		wait := q.delay - time.Since(q.lastWrite)
		switch {
		case wait <= 0:
			q.due, wake = true, true
		case !q.armed:
			q.armed = true
			q.timer.Reset(wait)
		}
	}
	q.mu.Unlock()
	if wake {
		q.signal()
	}
	return err
}

func (q *outQueue) notificationsDue() {
	q.mu.Lock()
	q.armed = false
	wake := len(q.frames) > 0
	q.due = q.due || wake
	q.mu.Unlock()
	if wake {
		q.signal()
	}
}

// holdLimit bounds what hold keeps back: past it, the frames are sent.
// Answers to a long run of buffered calls (a client prefetching many
// objects) then go out as they are ready rather than piling up.
const holdLimit = 64 << 10

// hold queues frames to be written with the next flush or send: the
// connection's reader holds its replies while further requests are
// already buffered, so that a pipelining client gets their answers in one
// write. Once holdLimit bytes are queued, it sends instead.
func (q *outQueue) hold(frames ...[]byte) error {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	q.mu.Lock()
	if q.bytes+n > holdLimit {
		q.mu.Unlock()
		return q.send(frames...)
	}
	defer q.mu.Unlock()
	return q.appendLocked(frames)
}

// flush writes whatever is queued, as send does.
func (q *outQueue) flush() error { return q.send() }

// send writes the queued frames and then frames from the calling
// goroutine, in one system call, if no other goroutine is writing;
// otherwise it queues them behind what is there, keeping the order.
// Writing at once spares a reply the switch to the writer goroutine and
// the wake-up of that goroutine. The write blocks while the peer does not
// read, so only goroutines working for that peer alone may call it: its
// reader, whose other requests then wait, and its vote, whose transaction
// waits for the peer's answer anyway.
func (q *outQueue) send(frames ...[]byte) error {
	q.mu.Lock()
	if q.writing || q.closed || q.err != nil {
		// Whoever writes now takes what is queued, held frames too, next.
		var err error
		if len(frames) > 0 {
			err = q.appendLocked(frames)
		}
		wake := err == nil && len(q.frames) > 0
		q.due = q.due || wake
		q.mu.Unlock()
		if wake {
			q.signal()
		}
		return err
	}
	if len(q.frames) > 0 {
		if err := q.appendLocked(frames); err != nil {
			q.mu.Unlock()
			return err
		}
		frames, q.frames = q.frames, nil
		q.bytes = 0
	} else if len(frames) == 0 {
		q.mu.Unlock()
		return nil
	}
	q.due = false
	q.writing = true
	q.mu.Unlock()
	err := zeo.WriteEncoded(q.w, frames)
	q.wrote(err)
	return err
}

// wrote ends a write, waking the writer for what queued meanwhile.
func (q *outQueue) wrote(err error) {
	q.mu.Lock()
	q.writing = false
	q.lastWrite = time.Now()
	if err != nil && q.err == nil {
		q.err = err
	}
	wake := q.err != nil || q.closed || (q.due && len(q.frames) > 0)
	q.mu.Unlock()
	if wake {
		q.signal()
	}
}

// signal wakes the writer goroutine.
func (q *outQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close stops the queue; the writer drains what is queued and returns.
func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.due = true
	q.mu.Unlock()
	q.timer.Stop()
	q.signal()
}

// writeTo writes queued frames when they are due, until the queue is
// closed and drained or a write fails. Frames due together go out in one
// flush.
func (q *outQueue) writeTo() error {
	bw := bufio.NewWriterSize(q.w, 64<<10)
	var batch [][]byte
	for {
		q.mu.Lock()
		for q.err == nil && (q.writing || len(q.frames) == 0 || !q.due) {
			if q.closed && !q.writing && len(q.frames) == 0 {
				q.mu.Unlock()
				return nil
			}
			q.mu.Unlock()
			<-q.wake
			q.mu.Lock()
		}
		if q.err != nil {
			err := q.err
			q.mu.Unlock()
			return err
		}
		batch, q.frames = q.frames, batch[:0]
		q.bytes = 0
		q.due = false
		q.writing = true
		q.mu.Unlock()
		var err error
		for _, f := range batch {
			if _, err = bw.Write(f); err != nil {
				break
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		clear(batch)
		q.wrote(err)
		if err != nil {
			return err
		}
	}
}
