package node_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zrs-go/zrs/node"
	"github.com/zrs-go/zrs/storage"
)

// httpNodeConfig is nodeConfig with an HTTP endpoint on a free port.
func httpNodeConfig(name, dir string, rep *node.ReplicationConfig) *node.Config {
	c := nodeConfig(name, dir, rep)
	c.HTTP = &node.HTTPConfig{Listen: "127.0.0.1:0"}
	return c
}

// httpGet returns the status code and body of GET path on n's endpoint.
func httpGet(t *testing.T, n *testNode, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTPAddr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func expectCode(t *testing.T, n *testNode, path string, want int) string {
	t.Helper()
	code, body := httpGet(t, n, path)
	if code != want {
		t.Fatalf("%s on %s: %d %q, want %d", path, n.Status().Name, code, body, want)
	}
	return body
}

func getStatus(t *testing.T, n *testNode) node.Status {
	t.Helper()
	body := expectCode(t, n, "/status", http.StatusOK)
	var st node.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	return st
}

// scrape parses /metrics with the Prometheus text parser.
func scrape(t *testing.T, n *testNode) map[string]*dto.MetricFamily {
	t.Helper()
	body := expectCode(t, n, "/metrics", http.StatusOK)
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// metricValue returns the value of the family's metric whose labels
// include the given name/value pairs (a histogram's sample count).
func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no metric %s with labels %v", name, labels)
	return 0
}

var hexTid = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestHTTPConfigBlock(t *testing.T) {
	src := "storage { path = \"x\" }\nzeo { listen = \":1\" }\nhttp {\n  listen = \"127.0.0.1:8200\"\n}\n"
	c, diags := node.ParseConfig("node.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if c.HTTP == nil || c.HTTP.Listen != "127.0.0.1:8200" {
		t.Fatalf("http block: %+v", c.HTTP)
	}
	for name, tt := range map[string]struct{ src, want string }{
		"bad listen":     {"storage { path = \"x\" }\nzeo { listen = \":1\" }\nhttp {\n  listen = \"nonsense\"\n}\n", "node.hcl:4,"},
		"missing listen": {"storage { path = \"x\" }\nzeo { listen = \":1\" }\nhttp {\n}\n", "node.hcl:3,"},
	} {
		_, diags := node.ParseConfig("node.hcl", []byte(tt.src))
		if !diags.HasErrors() {
			t.Errorf("%s: no error", name)
			continue
		}
		if got := diags.Error(); !strings.Contains(got, tt.want) || !strings.Contains(got, "listen") {
			t.Errorf("%s: %q does not name %q and listen", name, got, tt.want)
		}
	}

	// Without the block there is no endpoint, but the metrics exist.
	n := startNode(t, nodeConfig("plain", t.TempDir(), nil))
	if n.HTTPAddr() != nil {
		t.Fatalf("HTTP endpoint without an http block: %v", n.HTTPAddr())
	}
	if n.MetricsRegistry() == nil {
		t.Fatal("no metrics registry")
	}
}

// TestHTTPStaticPrimarySecondary checks the load balancer endpoints and
// /status of a static primary and its secondary, and the secondary's
// endpoints once its primary is gone.
func TestHTTPStaticPrimarySecondary(t *testing.T) {
	primary := startNode(t, httpNodeConfig("p", t.TempDir(), &node.ReplicationConfig{ReplicateTo: "127.0.0.1:0"}))
	upstream := primary.ReplicationAddr().String()
	sec := startNode(t, httpNodeConfig("s", t.TempDir(), &node.ReplicationConfig{ReplicateFrom: upstream}))

	for _, n := range []*testNode{primary, sec} {
		if body := expectCode(t, n, "/health", http.StatusOK); strings.TrimSpace(body) != "ok" {
			t.Fatalf("/health body %q", body)
		}
		expectCode(t, n, "/nonexistent", http.StatusNotFound)
	}
	expectCode(t, primary, "/primary", http.StatusOK)
	expectCode(t, primary, "/replica", http.StatusServiceUnavailable)
	expectCode(t, primary, "/replica?max_lag=1h", http.StatusServiceUnavailable)
	expectCode(t, sec, "/primary", http.StatusServiceUnavailable)
	expectCode(t, sec, "/replica", http.StatusOK)
	expectCode(t, sec, "/replica?max_lag=soon", http.StatusBadRequest)

	// A commit reaches the secondary; both report it.
	tid, _ := commitOne(t, primary)
	waitFor(t, "the secondary to apply the commit", func() bool {
		l := sec.Replica().Lag()
		return l.Connected && l.LastApplied == tid && l.Seconds == 0
	})
	waitFor(t, "the primary to see the acknowledgement", func() bool {
		l, ok := primary.Feed().Lags()["s"]
		return ok && l.Acked == tid
	})
	expectCode(t, sec, "/replica?max_lag=5s", http.StatusOK)
	expectCode(t, sec, "/replica?max_lag=0s", http.StatusOK) // caught up: no lag at all

	ps := getStatus(t, primary)
	if ps.Name != "p" || ps.Mode != "static" || ps.Role != "primary" || !ps.Writable || ps.Replicating || ps.Fenced ||
		ps.LastTid != tid.String() || !hexTid.MatchString(ps.LastTid) || ps.LastTidTime == nil ||
		!ps.LastTidTime.Equal(tid.Time()) || ps.LagSeconds != nil || ps.Clients != 1 || ps.ZooKeeper != nil || ps.Epoch != 0 {
		t.Fatalf("primary status: %+v", ps)
	}
	if s, ok := ps.Secondaries["s"]; !ok || s.Acked != tid.String() || s.LagTransactions != 0 || ps.SecondaryConnections != 1 {
		t.Fatalf("primary's secondaries: %+v (%d connections)", ps.Secondaries, ps.SecondaryConnections)
	}
	ss := getStatus(t, sec)
	if ss.Role != "secondary" || ss.Writable || !ss.Replicating || ss.LastTid != tid.String() ||
		ss.LagSeconds == nil || *ss.LagSeconds != 0 || ss.LagTransactions == nil || *ss.LagTransactions != 0 ||
		ss.Upstream != upstream || ss.UpstreamAddress != upstream || !ss.ReplicationConnected || ss.Synchronous ||
		len(ss.SyncMembers) != 0 || len(ss.Secondaries) != 0 {
		t.Fatalf("secondary status: %+v", ss)
	}

	// Without its primary the secondary still serves reads, but counts
	// as lagging for any bound.
	primary.stop()
	waitFor(t, "the secondary to notice", func() bool { return !sec.Replica().Lag().Connected })
	expectCode(t, sec, "/replica", http.StatusOK)
	expectCode(t, sec, "/replica?max_lag=1h", http.StatusServiceUnavailable)
	if ss := getStatus(t, sec); ss.ReplicationConnected {
		t.Fatalf("secondary status without its primary: %+v", ss)
	}
}

func TestHTTPReadOnlyNode(t *testing.T) {
	cfg := httpNodeConfig("ro", t.TempDir(), nil)
	cfg.ZEO.ReadOnly = true
	n := startNode(t, cfg)
	expectCode(t, n, "/primary", http.StatusServiceUnavailable)
	expectCode(t, n, "/replica", http.StatusServiceUnavailable)
	if st := getStatus(t, n); st.Role != "readonly" || st.Writable || st.Replicating || st.LastTid != storage.Tid(0).String() || st.LastTidTime != nil {
		t.Fatalf("read-only status: %+v", st)
	}
	fams := scrape(t, n)
	if metricValue(t, fams, "zrs_role", "role", "readonly") != 1 || metricValue(t, fams, "zrs_role", "role", "primary") != 0 {
		t.Fatal("zrs_role does not say readonly")
	}
}

// TestHTTPMetrics scrapes a primary and its secondary: every metric is
// there and parses, and the counters and histograms move with a commit
// and a load.
func TestHTTPMetrics(t *testing.T) {
	primary := startNode(t, httpNodeConfig("p", t.TempDir(), &node.ReplicationConfig{ReplicateTo: "127.0.0.1:0"}))
	sec := startNode(t, httpNodeConfig("s", t.TempDir(), &node.ReplicationConfig{ReplicateFrom: primary.ReplicationAddr().String()}))
	waitFor(t, "the secondary to connect", func() bool { return sec.Replica().Lag().Connected })

	before := scrape(t, primary)
	for _, name := range []string{
		"zrs_commits_total", "zrs_loads_total", "zrs_stores_total", "zrs_aborts_total", "zrs_conflicts_total",
		"zrs_commit_duration_seconds", "zrs_load_duration_seconds", "zrs_active_transactions", "zrs_commit_lock_waiting",
		"zrs_zeo_clients", "zrs_secondaries", "zrs_replication_sent_bytes_total", "zrs_role", "zrs_role_changes_total",
		"zrs_elections_won_total", "zrs_fenced", "zrs_fenced_periods_total", "zrs_writable", "zrs_epoch",
		"zrs_last_transaction_timestamp_seconds", "zrs_storage_size_bytes", "zrs_node_info", "go_goroutines",
		"zrs_secondary_lag_seconds", "zrs_secondary_lag_transactions", "zrs_secondary_acked_timestamp_seconds",
		"zrs_rewinds_total", "zrs_replication_connections_total",
	} {
		if _, ok := before[name]; !ok {
			t.Errorf("primary's /metrics lacks %s", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if before["zrs_commit_duration_seconds"].GetType() != dto.MetricType_HISTOGRAM ||
		before["zrs_commits_total"].GetType() != dto.MetricType_COUNTER || before["zrs_epoch"].GetType() != dto.MetricType_GAUGE {
		t.Fatal("metric types")
	}
	if metricValue(t, before, "zrs_role", "role", "primary") != 1 || metricValue(t, before, "zrs_role", "role", "secondary") != 0 ||
		metricValue(t, before, "zrs_writable") != 1 || metricValue(t, before, "zrs_fenced") != 0 ||
		metricValue(t, before, "zrs_secondaries") != 1 || metricValue(t, before, "zrs_replication_connections_total") < 1 || metricValue(t, before, "zrs_secondary_lag_transactions", "secondary", "s") != 0 {
		t.Fatal("primary's role, fence or secondaries metrics are wrong")
	}
	secFams := scrape(t, sec)
	for _, name := range []string{"zrs_replication_lag_seconds", "zrs_replication_lag_transactions", "zrs_replication_connected"} {
		if _, ok := secFams[name]; !ok {
			t.Errorf("secondary's /metrics lacks %s", name)
		}
	}
	if metricValue(t, secFams, "zrs_role", "role", "secondary") != 1 || metricValue(t, secFams, "zrs_replication_connected") != 1 {
		t.Fatal("secondary's role metrics are wrong")
	}

	tid, w := commitOne(t, primary)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := w.Load(ctx, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the secondary to apply the commit", func() bool { return sec.Replica().Lag().LastApplied == tid })

	after := scrape(t, primary)
	for _, name := range []string{"zrs_commits_total", "zrs_commit_duration_seconds", "zrs_loads_total", "zrs_load_duration_seconds", "zrs_stores_total"} {
		if b, a := metricValue(t, before, name), metricValue(t, after, name); a < b+1 {
			t.Errorf("%s went from %v to %v after a commit and a load", name, b, a)
		}
	}
	if b, a := metricValue(t, before, "zrs_replication_sent_bytes_total"), metricValue(t, after, "zrs_replication_sent_bytes_total"); a <= b {
		t.Errorf("zrs_replication_sent_bytes_total went from %v to %v after a replicated commit", b, a)
	}
	if got, want := metricValue(t, after, "zrs_last_transaction_timestamp_seconds"), tid.Seconds(); got != want {
		t.Errorf("zrs_last_transaction_timestamp_seconds %v, want %v", got, want)
	}
	if metricValue(t, after, "zrs_zeo_clients") != 1 {
		t.Errorf("zrs_zeo_clients %v, want 1", metricValue(t, after, "zrs_zeo_clients"))
	}
}
