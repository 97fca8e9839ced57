package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The HTTP endpoint (http { listen = ... }) serves:
//
//	/health              200 "ok" while the process runs
//	/primary             200 while the node accepts commits, else 503
//	/replica?max_lag=5s  200 while the node is a read-only secondary
//	                     replicating with at most that lag, else 503
//	/status              the node's Status as JSON
//	/metrics             Prometheus metrics
//
// /primary and /replica are meant for load balancers' health checks; the
// body says why in one line.

// httpShutdownTimeout bounds how long requests in flight may finish when
// the node stops.
const httpShutdownTimeout = 2 * time.Second

// listenHTTP binds the HTTP listener if the configuration has an http
// block.
func (n *Node) listenHTTP() error {
	if n.cfg.HTTP == nil {
		return nil
	}
	ln, err := listen(n.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	n.httpLn = ln
	return nil
}

// HTTPAddr returns where the node serves its HTTP endpoint, or nil.
func (n *Node) HTTPAddr() net.Addr {
	if n.httpLn == nil {
		return nil
	}
	return n.httpLn.Addr()
}

// MetricsRegistry returns the registry holding the node's Prometheus
// metrics (what /metrics serves), for embedders serving it themselves.
func (n *Node) MetricsRegistry() *prometheus.Registry { return n.metrics.registry() }

// HTTPHandler returns the handler of the node's HTTP endpoint.
func (n *Node) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		textReply(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /primary", n.handlePrimary)
	mux.HandleFunc("GET /replica", n.handleReplica)
	mux.HandleFunc("GET /status", n.handleStatus)
	if reg := n.metrics.registry(); reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorLog:      httpErrorLog{n},
			ErrorHandling: promhttp.ContinueOnError,
		}))
	}
	return mux
}

// startHTTP serves the HTTP endpoint, if configured, until the function
// returned is called.
func (n *Node) startHTTP() (stop func()) {
	if n.httpLn == nil {
		return func() {}
	}
	srv := &http.Server{
		Handler:           n.HTTPHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	n.log.Info("serving HTTP (health, status, metrics)", "address", n.httpLn.Addr().String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("HTTP endpoint failed; health checks will fail", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	}
}

func (n *Node) handlePrimary(w http.ResponseWriter, _ *http.Request) {
	rs := n.roleState()
	switch {
	case n.acceptsCommitsIn(rs):
		textReply(w, http.StatusOK, "primary")
	case rs.isPrimary:
		if err := n.zeo.fenceError(); err != nil {
			textReply(w, http.StatusServiceUnavailable, "primary, not accepting commits: "+err.Error())
			return
		}
		textReply(w, http.StatusServiceUnavailable, "primary, not accepting commits yet")
	default:
		textReply(w, http.StatusServiceUnavailable, "not primary: "+rs.role)
	}
}

func (n *Node) handleReplica(w http.ResponseWriter, r *http.Request) {
	var maxLag time.Duration
	limited := false
	if s := r.URL.Query().Get("max_lag"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			textReply(w, http.StatusBadRequest, fmt.Sprintf("max_lag %q is not a duration such as \"5s\"", s))
			return
		}
		maxLag, limited = d, true
	}
	rs := n.roleState()
	if !rs.replicating {
		textReply(w, http.StatusServiceUnavailable, "not a replicating secondary: "+rs.role)
		return
	}
	if !limited {
		textReply(w, http.StatusOK, "secondary")
		return
	}
	lag := n.replica.Lag()
	switch {
	case !lag.Connected:
		textReply(w, http.StatusServiceUnavailable, "secondary, not connected to its upstream")
	case lag.Seconds > maxLag.Seconds():
		textReply(w, http.StatusServiceUnavailable, fmt.Sprintf("secondary, lagging %.3fs > %s", lag.Seconds, maxLag))
	default:
		textReply(w, http.StatusOK, fmt.Sprintf("secondary, lag %.3fs", lag.Seconds))
	}
}

func (n *Node) handleStatus(w http.ResponseWriter, _ *http.Request) {
	b, err := json.MarshalIndent(n.Status(), "", "  ")
	if err != nil {
		textReply(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}

func textReply(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// httpErrorLog sends promhttp's errors to the node's log.
type httpErrorLog struct{ n *Node }

func (l httpErrorLog) Println(v ...any) {
	l.n.log.Warn("metrics: " + strings.TrimSpace(fmt.Sprintln(v...)))
}
