package node

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
)

// errQueueFull is returned when a peer does not read fast enough: its
// connection is dropped rather than letting memory grow without bound.
var errQueueFull = errors.New("outgoing queue full: peer is not reading")

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
	// writing is set while a goroutine writes to w; frames produced
	// meanwhile queue behind what it writes.
	writing bool
	err     error // the first write error; nothing more is written
	wake    chan struct{}
}

func newOutQueue(w io.Writer, limit int) *outQueue {
	return &outQueue{w: w, limit: limit, wake: make(chan struct{}, 1)}
}

// push queues frames, together: the writer sends them in one write. It
// fails when the queue is closed or over its limit, or a write failed.
func (q *outQueue) push(frames ...[]byte) error {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	q.mu.Lock()
	switch {
	case q.err != nil:
		q.mu.Unlock()
		return q.err
	case q.closed:
		q.mu.Unlock()
		return io.ErrClosedPipe
	case q.bytes+n > q.limit && q.bytes > 0:
		q.mu.Unlock()
		return errQueueFull
	}
	q.frames = append(q.frames, frames...)
	q.bytes += n
	q.mu.Unlock()
	q.signal()
	return nil
}

// send writes frames from the calling goroutine, in one system call, if
// nothing is queued or being written; otherwise it queues them behind
// what is there, keeping the order. Writing at once spares a reply the
// switch to the writer goroutine and the wake-up of that goroutine. The
// write blocks while the peer does not read, so only goroutines working
// for that peer alone may call it: its reader, whose other requests then
// wait, and its vote, whose transaction waits for the peer's answer
// anyway.
func (q *outQueue) send(frames ...[]byte) error {
	q.mu.Lock()
	if q.writing || len(q.frames) > 0 || q.closed || q.err != nil {
		q.mu.Unlock()
		return q.push(frames...)
	}
	q.writing = true
	q.mu.Unlock()
	var err error
	if len(frames) == 1 {
		_, err = q.w.Write(frames[0])
	} else {
		bufs := net.Buffers(frames)
		_, err = bufs.WriteTo(q.w)
	}
	q.mu.Lock()
	q.writing = false
	if err != nil && q.err == nil {
		q.err = err
	}
	queued := len(q.frames) > 0
	q.mu.Unlock()
	if queued || err != nil {
		q.signal()
	}
	return err
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
	q.mu.Unlock()
	q.signal()
}

// writeTo writes queued frames until the queue is closed and drained or a
// write fails. Frames queued together go out in one flush.
func (q *outQueue) writeTo() error {
	bw := bufio.NewWriterSize(q.w, 64<<10)
	var batch [][]byte
	for {
		q.mu.Lock()
		for q.err == nil && (q.writing || len(q.frames) == 0) {
			if q.closed && !q.writing {
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
		q.mu.Lock()
		q.writing = false
		if err != nil && q.err == nil {
			q.err = err
		}
		q.mu.Unlock()
		if err != nil {
			return err
		}
	}
}
