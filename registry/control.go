package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"
)

// MaintenanceRecord is the data of the maintenance znode: while Paused,
// no node runs for primary on its own (a planned switchover still works).
type MaintenanceRecord struct {
	Paused bool      `json:"paused"`
	By     string    `json:"by,omitempty"`
	Since  time.Time `json:"since,omitempty"`
}

// SwitchoverRecord is the data of the switchover znode: the operator asks
// primary From, serving Epoch, to hand over to To. It is stale once the
// epoch has moved on.
type SwitchoverRecord struct {
	From      string    `json:"from"`
	To        string    `json:"to"`
	Epoch     uint64    `json:"epoch"`
	Requested time.Time `json:"requested"`
}

// Control is what operators asked the cluster: the maintenance and
// switchover znodes (nil when absent).
type Control struct {
	Maintenance *MaintenanceRecord
	Switchover  *SwitchoverRecord
}

// getJSON reads path into v, with a watch for its next change (creation
// included); a missing znode leaves v alone and reports false.
func (s *Session) getJSON(path string, v any) (bool, <-chan zk.Event, error) {
	for range 10 {
		data, _, ch, err := s.conn.GetW(path)
		if errors.Is(err, zk.ErrNoNode) {
			ok, _, ch, err := s.conn.ExistsW(path)
			if err != nil {
				return false, nil, err
			}
			if ok {
				continue // created meanwhile
			}
			return false, ch, nil
		}
		if err != nil {
			return false, nil, err
		}
		if err := json.Unmarshal(data, v); err != nil {
			s.log.Warn("unreadable control znode ignored", "path", path, "data", string(data), "error", err)
			return false, ch, nil
		}
		return true, ch, nil
	}
	return false, nil, fmt.Errorf("registry: %s keeps changing", path)
}

type controlResult struct {
	c       Control
	watches []<-chan zk.Event
}

func (s *Session) getControl() (controlResult, error) {
	var r controlResult
	var m MaintenanceRecord
	ok, ch, err := s.getJSON(s.paths.Maintenance, &m)
	if err != nil {
		return r, err
	}
	if ok {
		r.c.Maintenance = &m
	}
	r.watches = append(r.watches, ch)
	var sw SwitchoverRecord
	ok, ch, err = s.getJSON(s.paths.Switchover, &sw)
	if err != nil {
		return r, err
	}
	if ok {
		r.c.Switchover = &sw
	}
	r.watches = append(r.watches, ch)
	return r, nil
}

// ReadControl reads the maintenance and switchover znodes once, waiting
// for a session.
func (s *Session) ReadControl(ctx context.Context) (Control, error) {
	var c Control
	err := s.retry(ctx, func() error {
		r, err := call(ctx, s, func() (controlResult, error) { return s.getControl() })
		c = r.c
		return err
	})
	return c, err
}

// WatchControl calls fn with the operators' requests now and after every
// change, like WatchPrimary.
func (s *Session) WatchControl(ctx context.Context, fn func(Control)) {
	s.watchLoop(ctx, "control", func() (<-chan zk.Event, error) {
		r, err := call(ctx, s, func() (controlResult, error) { return s.getControl() })
		if err != nil {
			return nil, err
		}
		fn(r.c)
		// Either znode's change wakes the loop.
		merged := make(chan zk.Event, 1)
		for _, ch := range r.watches {
			go func(ch <-chan zk.Event) {
				select {
				case ev := <-ch:
					select {
					case merged <- ev:
					default:
					}
				case <-ctx.Done():
				case <-s.closing:
				}
			}(ch)
		}
		return merged, nil
	})
}

// SetPaused records maintenance mode (paused) or ends it.
func (s *Session) SetPaused(ctx context.Context, paused bool, by string) error {
	if !paused {
		return s.deleteIfPresent(ctx, s.paths.Maintenance)
	}
	data, err := json.Marshal(MaintenanceRecord{Paused: true, By: by, Since: time.Now().UTC()})
	if err != nil {
		return err
	}
	return s.putPersistent(ctx, s.paths.Maintenance, data)
}

// RequestSwitchover writes the switchover znode; the primary named From
// acts on it while its epoch is rec.Epoch.
func (s *Session) RequestSwitchover(ctx context.Context, rec SwitchoverRecord) error {
	if rec.Requested.IsZero() {
		rec.Requested = time.Now().UTC()
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.putPersistent(ctx, s.paths.Switchover, data)
}

// ClearSwitchover deletes the switchover znode (done or abandoned).
func (s *Session) ClearSwitchover(ctx context.Context) error {
	return s.deleteIfPresent(ctx, s.paths.Switchover)
}

func (s *Session) putPersistent(ctx context.Context, path string, data []byte) error {
	return s.retry(ctx, func() error {
		for {
			_, err := call(ctx, s, func() (*zk.Stat, error) { return s.conn.Set(path, data, -1) })
			if !errors.Is(err, zk.ErrNoNode) {
				return err
			}
			_, err = call(ctx, s, func() (string, error) { return s.conn.Create(path, data, 0, zk.WorldACL(zk.PermAll)) })
			if !errors.Is(err, zk.ErrNodeExists) {
				return err // created, or failed; else someone created it meanwhile: set it
			}
		}
	})
}

func (s *Session) deleteIfPresent(ctx context.Context, path string) error {
	return s.retry(ctx, func() error {
		_, err := call(ctx, s, func() (struct{}, error) { return struct{}{}, s.conn.Delete(path, -1) })
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		return err
	})
}
