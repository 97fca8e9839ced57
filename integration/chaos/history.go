// Package chaos records and checks the histories of the chaos suite: the
// operations `zrs workload` runs against a cluster while faults are
// injected (history.go), the model they are checked against with
// porcupine and the independent checks on the end state and the node logs
// (check.go), and the per-fault measurements and report (report.go). The
// driver that injects the faults is chaos_test.go, behind -chaos.
//
// # The workload's promises
//
// Every key is one object (oid KeyOid(key)). A writer loads the key from
// the primary (no cache), then commits a new unique value stored against
// the serial it loaded: a compare-and-set from the value it read (Prev) to
// its own (Value). Values are never reused, and "" stands for "no object
// yet", so a value names exactly one transaction and the serial it was
// based on names its predecessor. The outcomes:
//
//   - ok: acknowledged; applied exactly once, between Start and End.
//   - fail: certainly not applied (a *client.NotCommittedError, or a
//     ConflictError, marked Conflict); no other constraint: a primary
//     may have checked the serial against a transaction of its own that
//     a failover then discarded.
//   - unknown: maybe applied, at any time after Start (porcupine gets an
//     end of +infinity, i.e. after every other operation).
//
// Readers load keys through a read-only cluster client (secondaries,
// possibly stale). A read is not linearizable and is not given to
// porcupine; it must return "" or a value some ok-or-unknown write wrote
// before the read ended, and per process and key the values read never go
// back in the key's version order (monotonic reads, and read-your-writes
// for the writers' own loads).
package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/zrs-go/zrs/storage"
)

// Operation kinds.
const (
	KindWrite = "write"
	KindRead  = "read"
)

// Outcomes.
const (
	OutcomeOK      = "ok"
	OutcomeFail    = "fail"
	OutcomeUnknown = "unknown"
)

// KeyBase is the oid of key 0: keys are objects KeyBase+key, far above
// what new_oids hands out in a fresh database.
const KeyBase = 0x10000

// KeyOid returns the object id of key.
func KeyOid(key int) storage.Oid { return storage.Oid(KeyBase + uint64(key)) }

// Op is one operation of a history: one line of history.jsonl.
type Op struct {
	Process string `json:"process"` // "w0", "r1", ...
	Kind    string `json:"kind"`    // KindWrite or KindRead
	Key     int    `json:"key"`
	// Value is the value written, or read ("" = no object).
	Value string `json:"value"`
	// Prev is, for a write, the value the store was based on (the value
	// whose serial was given; "" = none, a new object).
	Prev    string `json:"prev"`
	Start   int64  `json:"start_ns"`
	End     int64  `json:"end_ns"`
	Outcome string `json:"outcome"`
	Tid     string `json:"tid,omitempty"`
	Error   string `json:"error,omitempty"`
	// Conflict marks a write that failed with a ConflictError.
	Conflict bool `json:"conflict,omitempty"`
	// Server is the address the client was connected to after the
	// operation, Epoch the highest epoch it had seen.
	Server string `json:"server,omitempty"`
	Epoch  uint64 `json:"epoch,omitempty"`
}

func (o Op) String() string {
	switch o.Kind {
	case KindWrite:
		s := fmt.Sprintf("%s write k%d %q->%q %s [%d,%d]", o.Process, o.Key, o.Prev, o.Value, o.Outcome, o.Start, o.End)
		if o.Conflict {
			s += " conflict"
		}
		return s
	default:
		return fmt.Sprintf("%s read k%d = %q %s [%d,%d]", o.Process, o.Key, o.Value, o.Outcome, o.Start, o.End)
	}
}

// Clock gives wall-clock nanoseconds that never go backwards: the wall
// time at its creation plus the monotonic time since, so that times
// recorded in a container and on the host (same kernel clock) compare.
type Clock struct{ base time.Time }

// NewClock returns a Clock starting now.
func NewClock() Clock { return Clock{time.Now()} }

// Now returns the current time in Unix nanoseconds.
func (c Clock) Now() int64 { return c.base.UnixNano() + int64(time.Since(c.base)) }

// Recorder appends operations to a JSON-lines file, safe for concurrent
// use. It flushes every FlushEvery and on Close.
type Recorder struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	enc  *json.Encoder
	err  error
	n    int
	stop chan struct{}
	done chan struct{}
}

// FlushEvery is how often a Recorder flushes to its file.
const FlushEvery = 200 * time.Millisecond

// NewRecorder creates (truncates) path.
func NewRecorder(path string) (*Recorder, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	r := &Recorder{f: f, w: w, enc: json.NewEncoder(w), stop: make(chan struct{}), done: make(chan struct{})}
	go r.flusher()
	return r, nil
}

func (r *Recorder) flusher() {
	defer close(r.done)
	t := time.NewTicker(FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.mu.Lock()
			if r.err == nil {
				r.err = r.w.Flush()
			}
			r.mu.Unlock()
		case <-r.stop:
			return
		}
	}
}

// Record appends op.
func (r *Recorder) Record(op Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = r.enc.Encode(op)
		r.n++
	}
}

// Count returns how many operations were recorded.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Close flushes, syncs and closes the file, returning the first error.
func (r *Recorder) Close() error {
	close(r.stop)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = r.w.Flush()
	}
	if err := r.f.Sync(); r.err == nil {
		r.err = err
	}
	if err := r.f.Close(); r.err == nil {
		r.err = err
	}
	return r.err
}

// ReadHistory reads a history.jsonl. A truncated last line (the workload
// was killed mid-write) is ignored; any other bad line is an error.
func ReadHistory(rd io.Reader) ([]Op, error) {
	var ops []Op
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	var bad error
	line := 0
	for sc.Scan() {
		line++
		if bad != nil {
			return nil, bad
		}
		var op Op
		if err := json.Unmarshal(sc.Bytes(), &op); err != nil {
			bad = fmt.Errorf("history line %d: %v", line, err)
			continue
		}
		ops = append(ops, op)
	}
	return ops, sc.Err()
}

// ReadHistoryFile reads the history at path.
func ReadHistoryFile(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadHistory(f)
}

// Summary is what the workload writes to summary.json when it stops.
type Summary struct {
	Seed     int64            `json:"seed"`
	Writers  int              `json:"writers"`
	Readers  int              `json:"readers"`
	Keys     int              `json:"keys"`
	Start    int64            `json:"start_ns"`
	End      int64            `json:"end_ns"`
	Ops      int              `json:"ops"`
	Outcomes map[string]int   `json:"outcomes"` // "write/ok", "read/fail", ...
	Errors   map[string]int   `json:"errors,omitempty"`
	Extra    map[string]int64 `json:"extra,omitempty"`
}
