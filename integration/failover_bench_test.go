package integration

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zrs-go/zrs/client"
)

var failoverSessionTimeout = flag.Duration("failover.session-timeout", 4*time.Second,
	"zookeeper.session_timeout of the nodes in BenchmarkFailover")

// ackLog records when each commit was acknowledged and by which server.
type ackLog struct {
	mu   sync.Mutex
	at   []time.Time
	addr []string
}

func (l *ackLog) add(t time.Time, addr string) {
	l.mu.Lock()
	l.at, l.addr = append(l.at, t), append(l.addr, addr)
	l.mu.Unlock()
}

// after returns the first acknowledgement after t by a server other than
// not, and the longest gap between acknowledgements around t.
func (l *ackLog) after(t time.Time, not string) (first time.Time, gap time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := time.Time{}
	for i, at := range l.at {
		if at.Before(t) {
			last = at
			continue
		}
		if l.addr[i] == not {
			continue
		}
		if last.IsZero() {
			last = t
		}
		return at, at.Sub(last), true
	}
	return time.Time{}, 0, false
}

// ackingWriter commits new objects through c in the background until
// stopped, logging when each commit was acknowledged and by which server.
func ackingWriter(ctx context.Context, c *client.Client) (acks *ackLog, writerErr func() error, stop func()) {
	acks = &ackLog{}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			if _, _, cerr := commitNew(ctx, c, writerOid(i), writerData(i)); cerr != nil {
				if ctx.Err() == nil {
					err = cerr
				}
				return
			}
			acks.add(time.Now(), c.ServerAddr())
		}
	}()
	writerErr = func() error {
		select {
		case <-done:
			return fmt.Errorf("the writer stopped: %v", err)
		default:
			return nil
		}
	}
	return acks, writerErr, func() { cancel(); <-done }
}

// BenchmarkFailover measures, per iteration, the time from kill -9 of the
// primary to the first commit acknowledged by the new primary, and the
// write unavailability a client following ZooKeeper sees (the longest gap
// between acknowledged commits around the kill), with synchronous = 1
// under a continuous write load. Run it with -benchtime=20x; it reports
// min/median/max of both.
func BenchmarkFailover(b *testing.B) {
	zk := ZKStandalone(b)
	st := failoverSessionTimeout.String()
	cl := StartCluster(b, zk, 3, func(_ int, c *Config) {
		c.Synchronous = 1
		c.SessionTimeout = st
		c.SettleDelay = "500ms"
	})
	cl.WaitPrimary(2 * time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := dialCluster(b, ctx, cl)

	acks, writerErr, stopWriter := ackingWriter(ctx, c)
	defer stopWriter()

	var failovers, gaps []time.Duration
	b.ResetTimer()
	for range b.N {
		p, epoch := cl.WaitPrimary(2 * time.Minute)
		// Steady state first: a synchronous member (else the primary
		// runs degraded, asynchronously, and a kill may lose commits,
		// which the client then refuses to forget) and fresh commits.
		cl.WaitSyncMember(ctx, p, epoch)
		WaitFor(b, 30*time.Second, "a commit on the primary", func() bool {
			_, _, ok := acks.after(time.Now().Add(-200*time.Millisecond), "")
			return ok
		})
		killed := time.Now()
		p.Kill()
		var first time.Time
		var gap time.Duration
		WaitFor(b, 2*time.Minute, "a commit acknowledged by a new primary", func() bool {
			var ok bool
			first, gap, ok = acks.after(killed, p.ZEOAddr)
			return ok
		}, func() string {
			if err := writerErr(); err != nil {
				return err.Error()
			}
			return cl.Status()
		})
		failovers = append(failovers, first.Sub(killed))
		gaps = append(gaps, gap)
		b.Logf("run %d: killed %s; new primary's first commit after %v; write gap %v", len(failovers), p.Name(),
			first.Sub(killed).Round(time.Millisecond), gap.Round(time.Millisecond))
		p.Start()
		np, _ := cl.WaitPrimary(2 * time.Minute)
		target, err := np.LastTid(ctx)
		if err != nil {
			b.Fatal(err)
		}
		WaitFor(b, 2*time.Minute, "the killed node to rejoin and catch up", func() bool {
			got, err := p.LastTid(ctx)
			return err == nil && got >= target
		}, cl.Status)
	}
	b.StopTimer()
	report := func(name string, ds []time.Duration) {
		slices.Sort(ds)
		b.ReportMetric(ds[0].Seconds(), name+"-min-s")
		b.ReportMetric(ds[len(ds)/2].Seconds(), name+"-median-s")
		b.ReportMetric(ds[len(ds)-1].Seconds(), name+"-max-s")
		fmt.Printf("%s over %d runs: min %v, median %v, max %v (session timeout %v)\n", name, len(ds),
			ds[0].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond), *failoverSessionTimeout)
	}
	report("failover", failovers)
	report("write-gap", gaps)
}

// BenchmarkSwitchover measures, per iteration, the write pause a client
// following ZooKeeper sees during `zrs switchover` (the gap between
// acknowledged commits around it) with synchronous = 1 under a
// continuous write load. Run it with -benchtime=20x.
func BenchmarkSwitchover(b *testing.B) {
	zk := ZKStandalone(b)
	cl := StartCluster(b, zk, 3, func(_ int, c *Config) { c.Synchronous = 1 })
	cl.WaitPrimary(2 * time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := dialCluster(b, ctx, cl)
	acks, _, stopWriter := ackingWriter(ctx, c)
	defer stopWriter()

	var pauses []time.Duration
	b.ResetTimer()
	for range b.N {
		p, epoch := cl.WaitPrimary(2 * time.Minute)
		cl.WaitSyncMember(ctx, p, epoch)
		WaitFor(b, time.Minute, "fresh commits", func() bool {
			_, _, fresh := acks.after(time.Now().Add(-100*time.Millisecond), "")
			return fresh
		}, cl.Status)
		requested := time.Now()
		if out, err := cl.zrs("switchover"); err != nil {
			b.Fatalf("zrs switchover: %v\n%s", err, out)
		}
		var gap time.Duration
		WaitFor(b, time.Minute, "a commit acknowledged by the new primary", func() bool {
			var ok bool
			_, gap, ok = acks.after(requested, p.ZEOAddr)
			return ok
		}, cl.Status)
		pauses = append(pauses, gap)
	}
	b.StopTimer()
	slices.Sort(pauses)
	b.ReportMetric(pauses[0].Seconds(), "pause-min-s")
	b.ReportMetric(pauses[len(pauses)/2].Seconds(), "pause-median-s")
	b.ReportMetric(pauses[len(pauses)-1].Seconds(), "pause-max-s")
	fmt.Printf("switchover write pause over %d runs: min %v, median %v, max %v\n", len(pauses),
		pauses[0].Round(time.Millisecond), pauses[len(pauses)/2].Round(time.Millisecond), pauses[len(pauses)-1].Round(time.Millisecond))
}
