package node

import (
	"context"
	"fmt"
	"time"

	"github.com/zrs-go/zrs/registry"
	"github.com/zrs-go/zrs/storage"
)

// handOverTimeout bounds how long a primary waits, with commits refused,
// for the switchover target to acknowledge everything.
const handOverTimeout = 10 * time.Second

// maybeHandOver carries out a planned switchover when this node is the
// primary it names: refuse new commits, wait until the target has durably
// acknowledged every transaction this node holds, then resign. The
// elector then sees the primary znode gone, demotes this node, and lets
// only the target run, at once; this node follows it. If the target does
// not catch up in time the switchover is abandoned and commits resume.
func (c *cluster) maybeHandOver(ctx context.Context, sess *registry.Session) {
	c.mu.Lock()
	sw := c.control.Switchover
	c.mu.Unlock()
	term := c.currentTerm()
	if sw == nil || !c.primary.Load() || c.n.zeo.Fenced() || sw.From != c.cfg.Name ||
		sw.Epoch != term.Epoch || sw.To == c.cfg.Name || c.n.feed == nil {
		return
	}
	start := time.Now()
	c.log.Info("switchover: handing over; commits refused until the new primary takes them",
		"to", sw.To, "epoch", term.Epoch)
	c.n.zeo.Fence(fmt.Sprintf("switchover to %s in progress", sw.To))
	err := c.waitTargetCaughtUp(ctx, sw.To)
	if err == nil {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = sess.Resign(rctx, term)
		cancel()
	}
	if err != nil {
		c.log.Warn("switchover abandoned; serving commits again", "to", sw.To, "error", err)
		c.n.zeo.Unfence()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if cerr := sess.ClearSwitchover(cctx); cerr != nil {
			c.log.Warn("clearing the switchover request failed", "error", cerr)
		}
		cancel()
		return
	}
	c.log.Info("switchover: resigned; the target takes over", "to", sw.To, "epoch", term.Epoch,
		"last_tid", c.n.store.LastDurable(), "paused_for", time.Since(start).Round(time.Millisecond))
}

// waitTargetCaughtUp waits until secondary name has acknowledged every
// durable transaction of this node.
func (c *cluster) waitTargetCaughtUp(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, handOverTimeout)
	defer cancel()
	return c.waitAcked(ctx, func(lags map[string]SecondaryLag, want storage.Tid) error {
		if lag, ok := lags[name]; !ok {
			return fmt.Errorf("target %s is not connected", name)
		} else if lag.Acked < want {
			return fmt.Errorf("target %s acknowledged %s of %s", name, lag.Acked, want)
		}
		return nil
	})
}

// waitSecondariesCaughtUp waits, up to limit, until every connected
// secondary has acknowledged every durable transaction of this node and,
// when successors are registered (nodes that may run for primary), one of
// them has: the successor is elected as the freshest node, so a planned
// stop of an asynchronous primary loses nothing once one has caught up.
func (c *cluster) waitSecondariesCaughtUp(limit time.Duration) error {
	if c.n.feed == nil {
		return nil
	}
	successors := c.successors()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return c.waitAcked(ctx, func(lags map[string]SecondaryLag, want storage.Tid) error {
		caughtUp := false
		for name, lag := range lags {
			if lag.Connected && lag.Acked < want {
				return fmt.Errorf("secondary %s acknowledged %s of %s", name, lag.Acked, want)
			}
			caughtUp = caughtUp || (successors[name] && lag.Acked >= want)
		}
		if len(successors) > 0 && !caughtUp {
			return fmt.Errorf("no successor (of %d registered) has acknowledged %s", len(successors), want)
		}
		return nil
	})
}

// successors returns the other registered nodes that may run for primary.
func (c *cluster) successors() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]bool)
	for _, r := range c.nodes {
		if r.Name != c.cfg.Name && !r.NoFailover {
			out[r.Name] = true
		}
	}
	return out
}

// waitAcked flushes (commits that passed their vote before a fence may
// still finish), then polls the feed's acknowledgements until caughtUp
// accepts them or ctx ends.
func (c *cluster) waitAcked(ctx context.Context, caughtUp func(map[string]SecondaryLag, storage.Tid) error) error {
	if err := c.n.store.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	want := c.n.store.LastDurable()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		err := caughtUp(c.n.feed.Lags(), want)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", err, ctx.Err())
		case <-tick.C:
		}
	}
}

// clearDoneSwitchover removes a switchover request this node has just
// fulfilled by becoming primary.
func (c *cluster) clearDoneSwitchover(ctx context.Context, sess *registry.Session) {
	c.mu.Lock()
	sw := c.control.Switchover
	c.mu.Unlock()
	if sw == nil || sw.To != c.cfg.Name {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := sess.ClearSwitchover(cctx); err != nil {
		c.log.Warn("clearing the fulfilled switchover request failed", "error", err)
	}
}
