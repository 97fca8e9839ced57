package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zrs-go/zrs/node"
)

// httpGet returns the status code and body of GET path on the node's
// HTTP endpoint.
func httpGet(n *Node, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTPAddr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitHTTP waits until GET path on n answers code.
func waitHTTP(t *testing.T, n *Node, path string, code int, timeout time.Duration) {
	t.Helper()
	var got int
	var body string
	var err error
	WaitFor(t, timeout, fmt.Sprintf("%s on %s to answer %d", path, n.Name(), code), func() bool {
		got, body, err = httpGet(n, path)
		return err == nil && got == code
	}, func() string { return fmt.Sprintf("last answer %d %q, error %v", got, strings.TrimSpace(body), err) })
}

func expectHTTP(t *testing.T, n *Node, path string, code int) {
	t.Helper()
	got, body, err := httpGet(n, path)
	if err != nil || got != code {
		t.Fatalf("%s on %s: %d %q (error %v), want %d", path, n.Name(), got, strings.TrimSpace(body), err, code)
	}
}

func nodeStatus(t *testing.T, n *Node) node.Status {
	t.Helper()
	code, body, err := httpGet(n, "/status")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/status on %s: %d %v", n.Name(), code, err)
	}
	var st node.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status on %s: %v\n%s", n.Name(), err, body)
	}
	return st
}

// nodeMetrics scrapes /metrics and parses it with the Prometheus text
// parser.
func nodeMetrics(t *testing.T, n *Node) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, err := httpGet(n, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics on %s: %d %v", n.Name(), code, err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics on %s does not parse: %v", n.Name(), err)
	}
	return fams
}

// sample returns the value of a counter or gauge whose labels include
// the given pairs, or -1 if there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
next:
	for _, m := range fams[name].GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(m.GetLabel(), func(lp *dto.LabelPair) bool {
				return lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}) {
				continue next
			}
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	return -1
}

// TestHTTPEndpointsFlipAcrossFailover follows the load balancer
// endpoints through a failover: the elected primary answers /primary
// with 200 and the secondaries /replica; after kill -9 of the primary
// the new primary's /primary turns 200 under a new epoch, the other
// secondary's /replica answers 200 following it, and the killed node,
// restarted, is a secondary. /status and /metrics tell the same story.
func TestHTTPEndpointsFlipAcrossFailover(t *testing.T) {
	zk := ZKStandalone(t)
	cl := StartCluster(t, zk, 3, func(_ int, c *Config) { c.Synchronous = 1 })
	old, epoch := cl.WaitPrimary(electionTimeout)
	ctx := testContext(t, 2*time.Minute)

	waitHTTP(t, old, "/primary", http.StatusOK, 10*time.Second)
	expectHTTP(t, old, "/replica", http.StatusServiceUnavailable)
	var secondaries []*Node
	for _, n := range cl.Nodes {
		expectHTTP(t, n, "/health", http.StatusOK)
		if n != old {
			secondaries = append(secondaries, n)
			waitHTTP(t, n, "/replica?max_lag=5s", http.StatusOK, 20*time.Second)
			expectHTTP(t, n, "/primary", http.StatusServiceUnavailable)
		}
	}

	c := dialWriter(t, ctx, old)
	tid, _, err := commitNew(ctx, c, writerOid(0), writerData(0))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range secondaries {
		n.WaitTid(tid, catchUpTimeout)
	}
	ps := nodeStatus(t, old)
	if ps.Role != "primary" || ps.Mode != "zookeeper" || !ps.Writable || ps.Epoch != epoch || ps.LastTid != tid.String() ||
		ps.ZooKeeper == nil || ps.ZooKeeper.State != "connected" || ps.ZooKeeper.Primary != old.Name() || len(ps.Secondaries) != 2 {
		t.Fatalf("primary %s status: %+v", old.Name(), ps)
	}
	// With synchronous = 1 one secondary joins the synchronous set.
	WaitFor(t, 20*time.Second, "a synchronous member in /status", func() bool {
		st := nodeStatus(t, old)
		return st.Synchronous && len(st.SyncMembers) >= 1
	})
	for _, n := range secondaries {
		st := nodeStatus(t, n)
		if st.Role != "secondary" || st.Writable || !st.Replicating || st.Upstream != old.Name() || st.Epoch != epoch ||
			st.LagSeconds == nil || !st.ReplicationConnected || st.LastTid != tid.String() {
			t.Fatalf("secondary %s status: %+v", n.Name(), st)
		}
	}
	m := nodeMetrics(t, old)
	if sample(m, "zrs_role", "role", "primary") != 1 || sample(m, "zrs_epoch") != float64(epoch) ||
		sample(m, "zrs_elections_won_total") != 1 || sample(m, "zrs_commits_total") < 1 || sample(m, "zrs_secondaries") != 2 {
		t.Fatalf("primary %s metrics: role %v epoch %v elections %v commits %v secondaries %v", old.Name(),
			sample(m, "zrs_role", "role", "primary"), sample(m, "zrs_epoch"), sample(m, "zrs_elections_won_total"),
			sample(m, "zrs_commits_total"), sample(m, "zrs_secondaries"))
	}

	killed := time.Now()
	old.Kill()
	p, newEpoch := cl.WaitPrimary(electionTimeout, old)
	waitHTTP(t, p, "/primary", http.StatusOK, 10*time.Second)
	t.Logf("new primary %s (epoch %d): /primary 200 %v after the kill", p.Name(), newEpoch, time.Since(killed).Round(time.Millisecond))
	if newEpoch <= epoch {
		t.Fatalf("new epoch %d after %d", newEpoch, epoch)
	}
	expectHTTP(t, p, "/replica", http.StatusServiceUnavailable)
	if _, _, err := httpGet(old, "/health"); err == nil {
		t.Fatalf("the killed node %s still answers /health", old.Name())
	}
	for _, n := range secondaries {
		if n == p {
			continue
		}
		waitHTTP(t, n, "/replica?max_lag=5s", http.StatusOK, 20*time.Second)
		expectHTTP(t, n, "/primary", http.StatusServiceUnavailable)
		WaitFor(t, 10*time.Second, n.Name()+" to follow "+p.Name()+" in /status", func() bool {
			st := nodeStatus(t, n)
			return st.Upstream == p.Name() && st.Epoch == newEpoch && st.ReplicationConnected
		})
	}
	m = nodeMetrics(t, p)
	if sample(m, "zrs_role", "role", "primary") != 1 || sample(m, "zrs_role", "role", "secondary") != 0 ||
		sample(m, "zrs_epoch") != float64(newEpoch) || sample(m, "zrs_elections_won_total") != 1 ||
		sample(m, "zrs_role_changes_total", "role", "primary") < 1 || sample(m, "zrs_role_changes_total", "role", "secondary") < 1 ||
		sample(m, "zrs_fenced") != 0 {
		t.Fatalf("new primary %s metrics: role %v epoch %v elections %v", p.Name(),
			sample(m, "zrs_role", "role", "primary"), sample(m, "zrs_epoch"), sample(m, "zrs_elections_won_total"))
	}

	// The new primary takes commits; the killed node rejoins as a
	// secondary.
	c2 := dialWriter(t, ctx, p)
	tid2, _, err := commitNew(ctx, c2, writerOid(1), writerData(1))
	if err != nil {
		t.Fatal(err)
	}
	old.Start()
	waitHTTP(t, old, "/replica?max_lag=5s", http.StatusOK, electionTimeout)
	expectHTTP(t, old, "/primary", http.StatusServiceUnavailable)
	old.WaitTid(tid2, catchUpTimeout)
	if st := nodeStatus(t, old); st.Role != "secondary" || st.Upstream != p.Name() || st.Epoch != newEpoch {
		t.Fatalf("restarted %s status: %+v", old.Name(), st)
	}
}
