package node

import (
	"bufio"
	"errors"
	"io"
	"sync"
)

// errQueueFull is returned when a peer does not read fast enough: its
// connection is dropped rather than letting memory grow without bound.
var errQueueFull = errors.New("outgoing queue full: peer is not reading")

// outQueue holds the frames waiting to be written to one connection, in
// the order they were produced. Producers never block on the network.
type outQueue struct {
	mu     sync.Mutex
	frames [][]byte
	bytes  int
	limit  int
	closed bool
	wake   chan struct{}
}

func newOutQueue(limit int) *outQueue {
	return &outQueue{limit: limit, wake: make(chan struct{}, 1)}
}

// push queues frames, together: the writer sends them in one write. It
// fails when the queue is closed or over its limit.
func (q *outQueue) push(frames ...[]byte) error {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return io.ErrClosedPipe
	}
	if q.bytes+n > q.limit && q.bytes > 0 {
		q.mu.Unlock()
		return errQueueFull
	}
	q.frames = append(q.frames, frames...)
	q.bytes += n
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// close stops the queue; the writer drains what is queued and returns.
func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// writeTo writes queued frames to w until the queue is closed and drained
// or a write fails. Frames queued together go out in one flush.
func (q *outQueue) writeTo(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var batch [][]byte
	for {
		q.mu.Lock()
		batch, q.frames = q.frames, batch[:0]
		q.bytes = 0
		closed := q.closed
		q.mu.Unlock()
		for _, f := range batch {
			if _, err := bw.Write(f); err != nil {
				return err
			}
		}
		clear(batch)
		if err := bw.Flush(); err != nil {
			return err
		}
		if closed && len(batch) == 0 {
			return nil
		}
		if len(batch) == 0 {
			<-q.wake
		}
	}
}
