package node

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/zrs-go/zrs/election"
)

// nodeMetrics holds a node's Prometheus metrics in a registry of its own
// (no global registry: several nodes may run in one process). Most
// metrics read state the node keeps anyway (the ZEO service's counters,
// the replica's lag, the feed's secondaries) when scraped; only the
// latency histograms, the replication port's byte and connection counts
// and the role, fence and rewind events are recorded as they happen,
// through the nil-safe methods below, so that a component built without
// metrics (tests, embedders) needs no checks.
type nodeMetrics struct {
	reg *prometheus.Registry

	commitSeconds prometheus.Histogram
	loadSeconds   prometheus.Histogram
	roleChanges   *prometheus.CounterVec
	elections     prometheus.Counter
	fencedPeriods prometheus.Counter
	rewinds       prometheus.Counter
	streamed      atomic.Uint64 // bytes written to secondaries
	streams       atomic.Uint64 // connections accepted on the replication port

	mu       sync.Mutex
	wonEpoch uint64 // the last epoch this node became primary in (epochs start at 1)
}

// electionRoles returns the names of the roles of ZooKeeper mode, the
// values of zrs_role_changes_total's role label.
func electionRoles() []string {
	var names []string
	for r := election.Candidate; r <= election.Fenced; r++ {
		names = append(names, r.String())
	}
	return names
}

// roleReadOnly is a static node that neither accepts commits nor
// replicates (zeo { read_only = true }).
const roleReadOnly = "readonly"

// newMetrics builds the metrics of n, whose components must exist.
func newMetrics(n *Node) *nodeMetrics {
	m := &nodeMetrics{reg: prometheus.NewRegistry()}
	m.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "zrs_commit_duration_seconds",
		Help: "Time from a ZEO client's vote to the end of its tpc_finish on this node (commit lock wait, write, fsync, synchronous acknowledgements), for committed transactions.",
		// 0.5 ms .. 8 s
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
	})
	m.loadSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "zrs_load_duration_seconds",
		Help: "Time to serve a ZEO loadBefore on this node.",
		// 20 µs .. 0.65 s
		Buckets: prometheus.ExponentialBuckets(0.00002, 2, 16),
	})
	m.roleChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "zrs_role_changes_total",
		Help: "Role changes of this node in ZooKeeper mode, by the role taken.",
	}, []string{"role"})
	for _, r := range electionRoles() {
		m.roleChanges.WithLabelValues(r)
	}
	m.elections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "zrs_elections_won_total",
		Help: "Elections this node won: each time it became primary under a new epoch.",
	})
	m.fencedPeriods = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "zrs_fenced_periods_total",
		Help: "Times this node started refusing commits as a fenced primary (ZooKeeper session in doubt, switchover hand-over, shutdown).",
	})
	m.rewinds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "zrs_rewinds_total",
		Help: "Times this node rewound its data to its upstream's history (diverged transactions saved to a side file).",
	})
	reg := m.reg
	reg.MustRegister(m.commitSeconds, m.loadSeconds, m.roleChanges, m.elections, m.fencedPeriods, m.rewinds)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	stat := func(v *atomic.Int64) func() float64 { return func() float64 { return float64(v.Load()) } }
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	z := n.zeo
	counter("zrs_commits_total", "Transactions committed by ZEO clients of this node.", stat(&z.stats.commits))
	counter("zrs_loads_total", "ZEO loadBefore calls served.", stat(&z.stats.loads))
	counter("zrs_stores_total", "ZEO storea calls received.", stat(&z.stats.stores))
	counter("zrs_aborts_total", "ZEO transactions aborted.", stat(&z.stats.aborts))
	counter("zrs_conflicts_total", "Write conflicts returned to ZEO clients at vote.", stat(&z.stats.conflicts))
	gauge("zrs_active_transactions", "ZEO transactions in progress.", stat(&z.stats.activeTxns))
	gauge("zrs_commit_lock_waiting", "ZEO votes waiting for or holding the commit lock.", stat(&z.stats.waiting))
	gauge("zrs_zeo_clients", "Connected ZEO clients.", func() float64 { return float64(z.clientCount()) })
	gauge("zrs_last_transaction_timestamp_seconds", "Time encoded in the last transaction id visible to clients (0 for an empty storage).",
		func() float64 {
			if t := n.store.LastTransaction(); t != 0 {
				return t.Seconds()
			}
			return 0
		})
	gauge("zrs_storage_size_bytes", "Committed length of the data file.", func() float64 { return float64(n.store.Size()) })
	gauge("zrs_epoch", "Cluster epoch this node serves as primary or follows (0 in static mode).",
		func() float64 { return float64(z.Epoch()) })
	gauge("zrs_fenced", "1 while this node refuses commits as a fenced primary.", func() float64 { return flag(z.Fenced()) })
	gauge("zrs_writable", "1 while this node accepts commits (primary, not fenced).", func() float64 { return flag(n.acceptsCommits()) })
	// zrs_role has the election roles, and in static mode primary
	// (writable), secondary (replicate_from) or readonly.
	for _, r := range append(electionRoles(), roleReadOnly) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "zrs_role",
			Help:        "1 for the node's current role, 0 for the others.",
			ConstLabels: prometheus.Labels{"role": r},
		}, func() float64 { return flag(n.roleState().role == r) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "zrs_node_info",
		Help:        "Always 1; labels name the node and its software version.",
		ConstLabels: prometheus.Labels{"name": n.cfg.Name, "cluster": n.cfg.Cluster, "version": Version},
	}, func() float64 { return 1 }))

	if r := n.replica; r != nil {
		// Reported while the node replicates (a secondary); 0 otherwise.
		lag := func(f func(Lag) float64) func() float64 {
			return func() float64 {
				if !n.roleState().replicating {
					return 0
				}
				return f(r.Lag())
			}
		}
		gauge("zrs_replication_lag_seconds", "How much older the last transaction applied is than the upstream's newest (secondary).",
			lag(func(l Lag) float64 { return l.Seconds }))
		gauge("zrs_replication_lag_transactions", "Transactions the upstream has that this secondary has not applied yet (-1: the upstream does not say).",
			lag(func(l Lag) float64 { return float64(l.Transactions) }))
		gauge("zrs_replication_connected", "1 while this secondary has a replication stream established.",
			lag(func(l Lag) float64 { return flag(l.Connected) }))
	}
	if f := n.feed; f != nil {
		counter("zrs_replication_sent_bytes_total", "Bytes sent to secondaries on the replication port.",
			func() float64 { return float64(m.streamed.Load()) })
		counter("zrs_replication_connections_total", "Connections accepted on the replication port (secondaries connecting or reconnecting).",
			func() float64 { return float64(m.streams.Load()) })
		gauge("zrs_secondaries", "Connected replication streams (secondaries).", func() float64 { return float64(len(f.Secondaries())) })
		reg.MustRegister(newSecondaryLagCollector(f))
	}
	return m
}

// registry returns the registry, nil without metrics.
func (m *nodeMetrics) registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// observeCommit records a commit whose vote started at start.
func (m *nodeMetrics) observeCommit(start time.Time) {
	if m == nil || start.IsZero() {
		return
	}
	m.commitSeconds.Observe(time.Since(start).Seconds())
}

// timeLoad starts timing a load; call the function returned when done:
//
//	defer c.srv.metrics.timeLoad()()
func (m *nodeMetrics) timeLoad() func() {
	if m == nil {
		return func() {}
	}
	start := time.Now()
	return func() { m.loadSeconds.Observe(time.Since(start).Seconds()) }
}

// fenceStarted counts a fenced period (ZEOService.Fence on an unfenced
// service).
func (m *nodeMetrics) fenceStarted() {
	if m == nil {
		return
	}
	m.fencedPeriods.Inc()
}

// roleChanged counts a role change in ZooKeeper mode, and an election
// won when the node becomes primary under an epoch it was not primary
// of before (unfencing in the same term is no election).
func (m *nodeMetrics) roleChanged(from, to election.Role, epoch uint64) {
	if m == nil || from == to {
		return
	}
	m.roleChanges.WithLabelValues(to.String()).Inc()
	if to != election.Primary {
		return
	}
	m.mu.Lock()
	won := epoch != m.wonEpoch
	m.wonEpoch = epoch
	m.mu.Unlock()
	if won {
		m.elections.Inc()
	}
}

// rewound counts a rewind.
func (m *nodeMetrics) rewound() {
	if m == nil {
		return
	}
	m.rewinds.Inc()
}

// countStreamed wraps the replication listener so that connections and
// bytes written to secondaries are counted.
func (m *nodeMetrics) countStreamed(ln net.Listener) net.Listener {
	if m == nil {
		return ln
	}
	return countingListener{Listener: ln, m: m}
}

type countingListener struct {
	net.Listener
	m *nodeMetrics
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.m.streams.Add(1)
	return &countingConn{Conn: c, n: &l.m.streamed}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Uint64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(uint64(n))
	return n, err
}

// secondaryLagCollector reports the primary's view of each zrs-go/1
// secondary (Feed.Lags), labelled by the secondary's name.
type secondaryLagCollector struct {
	f                    *Feed
	seconds, txns, acked *prometheus.Desc
}

func newSecondaryLagCollector(f *Feed) *secondaryLagCollector {
	label := []string{"secondary"}
	return &secondaryLagCollector{
		f: f,
		seconds: prometheus.NewDesc("zrs_secondary_lag_seconds",
			"How much older a secondary's last acknowledged transaction is than the newest sent to it (primary's view).", label, nil),
		txns: prometheus.NewDesc("zrs_secondary_lag_transactions",
			"Transactions sent to a secondary and not acknowledged yet (primary's view).", label, nil),
		acked: prometheus.NewDesc("zrs_secondary_acked_timestamp_seconds",
			"Time encoded in the last transaction id a secondary acknowledged.", label, nil),
	}
}

func (c *secondaryLagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.seconds
	ch <- c.txns
	ch <- c.acked
}

func (c *secondaryLagCollector) Collect(ch chan<- prometheus.Metric) {
	for name, l := range c.f.Lags() {
		ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, l.Seconds, name)
		ch <- prometheus.MustNewConstMetric(c.txns, prometheus.GaugeValue, float64(l.Transactions), name)
		acked := 0.0
		if l.Acked != 0 {
			acked = l.Acked.Seconds()
		}
		ch <- prometheus.MustNewConstMetric(c.acked, prometheus.GaugeValue, acked, name)
	}
}
