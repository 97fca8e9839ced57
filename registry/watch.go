package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"time"

	"github.com/go-zookeeper/zk"
)

// PrimaryView is what the primary znode says.
type PrimaryView struct {
	// Present: there is a primary.
	Present bool
	// Record is its data (zero when absent, or unreadable: that is logged).
	Record PrimaryRecord
	// Owner is the session holding the znode.
	Owner int64
}

// watchRetry is how long a watch waits before trying again after an error
// that is not a lost connection.
const watchRetry = 500 * time.Millisecond

// ReadPrimary reads the primary znode once, waiting for a session.
func (s *Session) ReadPrimary(ctx context.Context) (PrimaryView, error) {
	var v PrimaryView
	err := s.retry(ctx, func() error {
		r, err := call(ctx, s, func() (primaryResult, error) { return s.getPrimary(false) })
		v = r.view
		return err
	})
	return v, err
}

type primaryResult struct {
	view  PrimaryView
	czxid int64
	watch <-chan zk.Event
}

// getPrimary reads the primary znode, with a watch for its next change
// (creation included) when watch is set.
func (s *Session) getPrimary(watch bool) (primaryResult, error) {
	path := s.paths.Primary
	for range 10 {
		var (
			data []byte
			stat *zk.Stat
			ch   <-chan zk.Event
			err  error
		)
		if watch {
			data, stat, ch, err = s.conn.GetW(path)
		} else {
			data, stat, err = s.conn.Get(path)
		}
		if errors.Is(err, zk.ErrNoNode) {
			if !watch {
				return primaryResult{}, nil
			}
			ok, _, ch, err := s.conn.ExistsW(path)
			if err != nil {
				return primaryResult{}, err
			}
			if ok {
				continue // created meanwhile
			}
			return primaryResult{watch: ch}, nil
		}
		if err != nil {
			return primaryResult{}, err
		}
		r := primaryResult{view: PrimaryView{Present: true, Owner: stat.EphemeralOwner}, czxid: stat.Czxid, watch: ch}
		if err := json.Unmarshal(data, &r.view.Record); err != nil {
			s.log.Warn("unreadable primary znode", "path", path, "data", string(data), "error", err)
			r.view.Record = PrimaryRecord{}
		}
		return r, nil
	}
	return primaryResult{}, fmt.Errorf("registry: %s keeps changing", path)
}

// WatchPrimary calls fn with the primary znode's view now and after every
// change (creation, deletion, new data, new owner), until ctx ends or the
// Session closes. fn is called from a goroutine of the watch, one call at
// a time; it may block (the watch re-arms after it returns, reading the
// latest state, so a slow fn skips intermediate views but never misses
// the last). While there is no session, fn is not called: combine with
// Status.
func (s *Session) WatchPrimary(ctx context.Context, fn func(PrimaryView)) {
	var last primaryResult
	first := true
	s.watchLoop(ctx, "primary", func() (<-chan zk.Event, error) {
		r, err := call(ctx, s, func() (primaryResult, error) { return s.getPrimary(true) })
		if err != nil {
			return nil, err
		}
		if first || r.view != last.view || r.czxid != last.czxid {
			first, last = false, r
			fn(r.view)
		}
		return r.watch, nil
	})
}

// awaitConnected blocks until the session is connected and returns the
// channel that fires at its next status change, or false once ctx ends or
// the Session closes.
func (s *Session) awaitConnected(ctx context.Context) (<-chan struct{}, bool) {
	for {
		if ctx.Err() != nil || s.isClosing() {
			return nil, false
		}
		st, stCh := s.StatusChan()
		switch st.State {
		case StateClosed:
			return nil, false
		case StateConnected:
			return stCh, true
		}
		select {
		case <-stCh:
		case <-ctx.Done():
		case <-s.closing:
		}
	}
}

// watchLoop runs step whenever there is a session, again when the channel
// it returns fires or the status changes, until ctx ends or the Session
// closes.
func (s *Session) watchLoop(ctx context.Context, what string, step func() (<-chan zk.Event, error)) {
	go func() {
		for {
			stCh, ok := s.awaitConnected(ctx)
			if !ok {
				return
			}
			ch, err := step()
			if err != nil {
				if ctx.Err() != nil || s.isClosing() {
					return
				}
				if !isConnErr(err) {
					s.log.Warn("watch failed; retrying", "watch", what, "error", err)
				}
				select {
				case <-stCh:
				case <-time.After(watchRetry):
				case <-ctx.Done():
				case <-s.closing:
				}
				continue
			}
			select {
			case <-ch:
			case <-stCh:
			case <-ctx.Done():
			case <-s.closing:
			}
		}
	}()
}

// ReadNodes reads every node record once, sorted by name, waiting for a
// session. Unreadable records are logged and left out.
func (s *Session) ReadNodes(ctx context.Context) ([]NodeRecord, error) {
	var out []NodeRecord
	err := s.retry(ctx, func() error {
		var err error
		out, err = call(ctx, s, func() ([]NodeRecord, error) {
			names, _, err := s.conn.Children(s.paths.Nodes)
			if err != nil {
				return nil, err
			}
			recs := make(map[string]*NodeRecord)
			for _, name := range names {
				data, _, err := s.conn.Get(s.paths.Node(name))
				if errors.Is(err, zk.ErrNoNode) {
					continue
				}
				if err != nil {
					return nil, err
				}
				recs[name] = s.decodeNode(name, data)
			}
			return sortedNodes(recs), nil
		})
		return err
	})
	return out, err
}

func (s *Session) decodeNode(name string, data []byte) *NodeRecord {
	var r NodeRecord
	if err := json.Unmarshal(data, &r); err != nil {
		s.log.Warn("unreadable node record", "path", s.paths.Node(name), "data", string(data), "error", err)
		return nil
	}
	if r.Name != name {
		if r.Name != "" {
			s.log.Warn("node record names another node; using the znode's name", "path", s.paths.Node(name), "name", r.Name)
		}
		r.Name = name
	}
	return &r
}

func sortedNodes(recs map[string]*NodeRecord) []NodeRecord {
	out := make([]NodeRecord, 0, len(recs))
	for _, r := range recs {
		if r != nil {
			out = append(out, *r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// WatchNodes calls fn with every node record (sorted by name; unreadable
// ones are logged and left out) now and after every change of the set of
// nodes or of any record, until ctx ends or the Session closes. fn is
// called from a goroutine of the watch, one call at a time, with changes
// that arrive together coalesced; it may block (later changes then
// arrive together). While there is no session, fn is not called: combine
// with Status.
func (s *Session) WatchNodes(ctx context.Context, fn func([]NodeRecord)) {
	go func() {
		var last []NodeRecord
		delivered := false
		deliver := func(recs map[string]*NodeRecord) {
			list := sortedNodes(recs)
			if delivered && reflect.DeepEqual(list, last) {
				return
			}
			delivered, last = true, list
			fn(list)
		}
		for {
			stCh, ok := s.awaitConnected(ctx)
			if !ok {
				return
			}
			err := s.watchNodesOnce(ctx, stCh, deliver)
			if err != nil && ctx.Err() == nil && !s.isClosing() {
				if !isConnErr(err) {
					s.log.Warn("watch failed; retrying", "watch", "nodes", "error", err)
				}
				select {
				case <-stCh:
				case <-time.After(watchRetry):
				case <-ctx.Done():
				case <-s.closing:
				}
			}
		}
	}()
}

type nodeEvent struct {
	child string // "" for the children watch
	ev    zk.Event
}

var errWatchLost = errors.New("registry: watch lost")

// watchNodesOnce reads all node records with watches and follows their
// changes, one read per change, until an error or a status change (then
// the caller starts over) or the end.
func (s *Session) watchNodesOnce(ctx context.Context, stCh <-chan struct{}, deliver func(map[string]*NodeRecord)) error {
	events := make(chan nodeEvent, 16)
	stop := make(chan struct{})
	defer close(stop)
	forward := func(child string, ch <-chan zk.Event) {
		go func() {
			select {
			case ev, ok := <-ch:
				if ok {
					select {
					case events <- nodeEvent{child, ev}:
					case <-stop:
					}
				}
			case <-stop:
			}
		}()
	}
	// known: every child with a data watch armed; nil for unreadable.
	known := make(map[string]*NodeRecord)
	getChild := func(name string) error {
		type res struct {
			data []byte
			ch   <-chan zk.Event
		}
		r, err := call(ctx, s, func() (res, error) {
			data, _, ch, err := s.conn.GetW(s.paths.Node(name))
			return res{data, ch}, err
		})
		if errors.Is(err, zk.ErrNoNode) {
			delete(known, name)
			return nil
		}
		if err != nil {
			return err
		}
		forward(name, r.ch)
		known[name] = s.decodeNode(name, r.data)
		return nil
	}
	listChildren := func() error {
		type res struct {
			names []string
			ch    <-chan zk.Event
		}
		r, err := call(ctx, s, func() (res, error) {
			names, _, ch, err := s.conn.ChildrenW(s.paths.Nodes)
			return res{names, ch}, err
		})
		if err != nil {
			return err
		}
		forward("", r.ch)
		seen := make(map[string]bool, len(r.names))
		for _, name := range r.names {
			seen[name] = true
			if _, ok := known[name]; !ok {
				if err := getChild(name); err != nil {
					return err
				}
			}
		}
		for name := range known {
			if !seen[name] {
				delete(known, name)
			}
		}
		return nil
	}

	if err := listChildren(); err != nil {
		return err
	}
	deliver(known)
	for {
		var batch []nodeEvent
		select {
		case ne := <-events:
			batch = append(batch, ne)
		case <-stCh:
			return nil
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		}
	drain:
		for {
			select {
			case ne := <-events:
				batch = append(batch, ne)
			default:
				break drain
			}
		}
		relist := false
		for _, ne := range batch {
			switch {
			case ne.ev.Type == zk.EventNotWatching:
				return errWatchLost
			case ne.child == "":
				relist = true
			case ne.ev.Type == zk.EventNodeDeleted:
				delete(known, ne.child)
			default:
				if err := getChild(ne.child); err != nil {
					return err
				}
			}
		}
		if relist {
			if err := listChildren(); err != nil {
				return err
			}
		}
		deliver(known)
	}
}

// ReadEpoch reads the epoch znode, waiting for a session.
func (s *Session) ReadEpoch(ctx context.Context) (Epoch, error) {
	var ep Epoch
	err := s.retry(ctx, func() error {
		type res struct {
			data []byte
			stat *zk.Stat
		}
		r, err := call(ctx, s, func() (res, error) {
			data, stat, err := s.conn.Get(s.paths.Epoch)
			return res{data, stat}, err
		})
		if err != nil {
			return err
		}
		v, err := parseEpoch(r.data)
		if err != nil {
			return err
		}
		ep = Epoch{Value: v, Version: r.stat.Version}
		return nil
	})
	return ep, err
}

// ReadSync reads the sync znode, waiting for a session; zero before any
// primary wrote it.
func (s *Session) ReadSync(ctx context.Context) (SyncRecord, error) {
	var rec SyncRecord
	err := s.retry(ctx, func() error {
		data, err := call(ctx, s, func() ([]byte, error) {
			data, _, err := s.conn.Get(s.paths.Sync)
			return data, err
		})
		if errors.Is(err, zk.ErrNoNode) {
			rec = SyncRecord{}
			return nil
		}
		if err != nil {
			return err
		}
		rec = SyncRecord{}
		if len(data) == 0 {
			return nil
		}
		if err := json.Unmarshal(data, &rec); err != nil {
			return fmt.Errorf("registry: unreadable sync znode %q: %v", data, err)
		}
		return nil
	})
	return rec, err
}
