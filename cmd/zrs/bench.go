package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/node"
	"github.com/zrs-go/zrs/storage"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure load and commit throughput and latency through the Go ZEO client",
		Description: "Without --addr, starts a node on a fresh data file in a temporary directory,\n" +
			"listening on 127.0.0.1 (or, with --network unix, on a Unix socket beside its data\n" +
			"file), and measures client and server together on this machine; with --addr,\n" +
			"measures an existing server (which then chooses the protocol).\n\n" +
			"Each connection is its own client, running --inflight operations at a time (one by\n" +
			"default). Loads read random preloaded objects; each commit stores one object of\n" +
			"--object-size bytes, each worker its own object, so commits do not conflict.\n" +
			"A connection carries one transaction at a time: its workers' commits take turns.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Usage: "`HOST:PORT` (or socket path) of a running server; default: start an embedded node"},
			&cli.IntFlag{Name: "connections", Aliases: []string{"n"}, Value: 1, Usage: "number of client connections, each its own client"},
			&cli.IntFlag{Name: "inflight", Value: 1, Usage: "operations each connection runs concurrently (like the threads of one ZEO client sharing its connection)"},
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Value: 10 * time.Second, Usage: "how long to measure"},
			&cli.StringFlag{Name: "mix", Value: "100:0", Usage: "`LOADS:COMMITS` ratio of operations, e.g. 100:0, 0:100, 90:10"},
			&cli.IntFlag{Name: "object-size", Value: 100, Usage: "size in `BYTES` of preloaded and committed objects"},
			&cli.IntFlag{Name: "objects", Value: 1000, Usage: "number of objects preloaded for the loads"},
			&cli.StringFlag{Name: "protocol", Value: node.ProtocolPickle, Usage: "protocol of the embedded node: pickle or msgpack"},
			&cli.BoolFlag{Name: "cache", Usage: "let the clients use their object cache (off: every load goes to the server)"},
			&cli.BoolFlag{Name: "fsync-baseline", Usage: "first measure the disk's serial fsync rate in the data directory"},
			&cli.DurationFlag{Name: "fsync-duration", Value: 2 * time.Second, Usage: "how long the fsync baseline runs"},
			&cli.BoolFlag{Name: "node-process", Usage: "run the embedded node as a child `zrs node` process, as a real server runs apart from its clients, rather than inside the bench's process"},
			&cli.StringFlag{Name: "network", Value: "tcp", Usage: "how the embedded node listens and the network baseline connects: tcp (loopback) or unix (a socket, as a client on the server's machine may use)"},
			&cli.BoolFlag{Name: "net-baseline", Aliases: []string{"tcp-baseline"}, Usage: "first measure bare round trips in Go over --connections connections of the --network: what the machine allows any server"},
			&cli.DurationFlag{Name: "net-duration", Aliases: []string{"tcp-duration"}, Value: 2 * time.Second, Usage: "how long the network baseline runs"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the measured run (clients, and the embedded node unless --node-process) to `FILE`"},
			&cli.StringFlag{Name: "data-dir", Usage: "`DIR` in which the embedded node's temporary data directory and the fsync baseline file are created (default: the system temporary directory)"},
		},
		Action: runBench,
	}
}

// benchConfig is the parsed command line of `zrs bench`.
type benchConfig struct {
	addr          string
	connections   int
	inflight      int
	duration      time.Duration
	loadWeight    int
	commitWeight  int
	objectSize    int
	objects       int
	protocol      string
	cache         bool
	fsyncBaseline bool
	fsyncDuration time.Duration
	nodeProcess   bool
	network       string // of the embedded node and the network baseline
	netBaseline   bool
	netDuration   time.Duration
	dataDir       string
	cpuProfile    string
}

func benchConfigFrom(c *cli.Context) (*benchConfig, error) {
	cfg := &benchConfig{
		addr:          c.String("addr"),
		connections:   c.Int("connections"),
		inflight:      c.Int("inflight"),
		duration:      c.Duration("duration"),
		objectSize:    c.Int("object-size"),
		objects:       c.Int("objects"),
		protocol:      c.String("protocol"),
		cache:         c.Bool("cache"),
		fsyncBaseline: c.Bool("fsync-baseline"),
		fsyncDuration: c.Duration("fsync-duration"),
		nodeProcess:   c.Bool("node-process"),
		network:       c.String("network"),
		netBaseline:   c.Bool("net-baseline"),
		netDuration:   c.Duration("net-duration"),
		dataDir:       c.String("data-dir"),
		cpuProfile:    c.String("cpuprofile"),
	}
	var err error
	if cfg.loadWeight, cfg.commitWeight, err = parseMix(c.String("mix")); err != nil {
		return nil, err
	}
	switch {
	case c.NArg() != 0:
		return nil, fmt.Errorf("bench: unexpected arguments %q", c.Args().Slice())
	case cfg.connections < 1:
		return nil, fmt.Errorf("bench: --connections must be at least 1")
	case cfg.inflight < 1:
		return nil, fmt.Errorf("bench: --inflight must be at least 1")
	case cfg.duration <= 0:
		return nil, fmt.Errorf("bench: --duration must be positive")
	case cfg.objectSize < 1:
		return nil, fmt.Errorf("bench: --object-size must be at least 1 byte")
	case cfg.objects < 0 || cfg.loadWeight > 0 && cfg.objects < 1:
		return nil, fmt.Errorf("bench: loads need --objects of at least 1")
	case cfg.protocol != node.ProtocolPickle && cfg.protocol != node.ProtocolMsgpack:
		return nil, fmt.Errorf("bench: --protocol %q is not %q or %q", cfg.protocol, node.ProtocolPickle, node.ProtocolMsgpack)
	case cfg.addr != "" && c.IsSet("protocol"):
		return nil, fmt.Errorf("bench: --protocol applies to the embedded node; with --addr the server chooses")
	case cfg.fsyncDuration <= 0:
		return nil, fmt.Errorf("bench: --fsync-duration must be positive")
	case cfg.network != "tcp" && cfg.network != "unix":
		return nil, fmt.Errorf("bench: --network %q is not tcp or unix", cfg.network)
	case cfg.addr != "" && cfg.nodeProcess:
		return nil, fmt.Errorf("bench: --node-process starts a node; with --addr the server is running already")
	case cfg.addr != "" && c.IsSet("network"):
		return nil, fmt.Errorf("bench: --network applies to the embedded node; with --addr the address says")
	case cfg.netDuration <= 0:
		return nil, fmt.Errorf("bench: --net-duration must be positive")
	}
	if cfg.dataDir == "" {
		cfg.dataDir = os.TempDir()
	}
	return cfg, nil
}

// parseMix parses LOADS:COMMITS.
func parseMix(s string) (loads, commits int, err error) {
	l, cm, ok := strings.Cut(s, ":")
	if ok {
		loads, err = strconv.Atoi(strings.TrimSpace(l))
		if err == nil {
			commits, err = strconv.Atoi(strings.TrimSpace(cm))
		}
	}
	if !ok || err != nil || loads < 0 || commits < 0 || loads+commits == 0 {
		return 0, 0, fmt.Errorf("bench: --mix %q is not LOADS:COMMITS with non-negative integers, not both 0", s)
	}
	return loads, commits, nil
}

func runBench(c *cli.Context) (err error) {
	cfg, err := benchConfigFrom(c)
	if err != nil {
		return err
	}
	// Ctrl-C ends the measurement early; the results so far are printed.
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := c.App.Writer

	// The baselines run first, so that nothing else competes for the
	// disk or the processors.
	var base baselines
	if cfg.fsyncBaseline {
		if base.fsyncs, err = fsyncRate(cfg.dataDir, cfg.fsyncDuration); err != nil {
			return fmt.Errorf("bench: fsync baseline: %w", err)
		}
	}
	if cfg.netBaseline {
		if base.roundTrips, err = pingPong(ctx, cfg.network, cfg.dataDir, cfg.connections, cfg.netDuration); err != nil {
			return fmt.Errorf("bench: network baseline: %w", err)
		}
	}

	addr, where := cfg.addr, "server "+cfg.addr
	if addr == "" {
		// The node logs warnings and errors only, unless asked otherwise.
		level := hclog.Warn
		if c.IsSet("log-level") {
			level = hclog.LevelFromString(c.String("log-level"))
		}
		log := hclog.New(&hclog.LoggerOptions{Name: "zrs-bench", Level: level, Output: c.App.ErrWriter})
		var emb *embeddedNode
		var serr error
		if cfg.nodeProcess {
			emb, serr = startNodeProcess(ctx, cfg.dataDir, cfg.network, cfg.protocol, c.App.ErrWriter)
		} else {
			emb, serr = startEmbeddedNode(cfg.dataDir, cfg.network, cfg.protocol, log)
		}
		if serr != nil {
			return serr
		}
		defer func() {
			if serr := emb.stop(); serr != nil && err == nil {
				err = serr
			}
		}()
		addr = emb.addr
		kind := "embedded node"
		if cfg.nodeProcess {
			kind = "node process"
		}
		where = fmt.Sprintf("%s on %s (%s, data file %s)", kind, addr, cfg.protocol, emb.path)
	}

	res, err := benchmark(ctx, cfg, addr)
	if err != nil {
		return err
	}
	printBench(out, cfg, where, res, base)
	if n := res.errors(); n > 0 {
		return fmt.Errorf("bench: %d operations failed (first: %v)", n, res.firstErr)
	}
	return nil
}

// embeddedNode is a node on a temporary data file, for measuring without
// a separate server: inside the bench's process, or (--node-process) in
// a child `zrs node` process of its own, as a real server runs.
type embeddedNode struct {
	dir, path, addr string
	shutdown        func() error
}

// benchNodeConfig is the embedded node's configuration in dir.
func benchNodeConfig(dir, network, protocol string) *node.Config {
	cfg := node.Default(dir)
	cfg.Name = "bench"
	cfg.ZEO.Listen = "127.0.0.1:0"
	if network == "unix" {
		cfg.ZEO.Listen = filepath.Join(dir, "zeo.sock")
	}
	cfg.ZEO.Protocol = protocol
	return cfg
}

func startEmbeddedNode(parent, network, protocol string, log hclog.Logger) (*embeddedNode, error) {
	dir, err := os.MkdirTemp(parent, "zrs-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: data directory: %w", err)
	}
	cfg := benchNodeConfig(dir, network, protocol)
	n, err := node.New(cfg, log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return &embeddedNode{dir: dir, path: cfg.Storage.Path, addr: n.ZEOAddr().String(), shutdown: func() error {
		cancel()
		return <-done
	}}, nil
}

// nodeAnnouncement is the line `zrs node` prints once it serves.
var nodeAnnouncement = regexp.MustCompile(`ZEO clients connect to (\S+) `)

// startNodeProcess runs the embedded node as a child `zrs node` process
// (this executable), logging warnings and errors to logTo.
func startNodeProcess(ctx context.Context, parent, network, protocol string, logTo io.Writer) (*embeddedNode, error) {
	dir, err := os.MkdirTemp(parent, "zrs-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: data directory: %w", err)
	}
	fail := func(err error) (*embeddedNode, error) {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: node process: %w", err)
	}
	cfg := benchNodeConfig(dir, network, protocol)
	hcl := fmt.Sprintf("name = %s\nstorage {\n  path = %s\n}\nzeo {\n  listen = %s\n  protocol = %s\n}\nlog {\n  level = \"warn\"\n}\n",
		node.QuoteHCL(cfg.Name), node.QuoteHCL(cfg.Storage.Path), node.QuoteHCL(cfg.ZEO.Listen), node.QuoteHCL(protocol))
	cfgPath := filepath.Join(dir, "node.hcl")
	if err := os.WriteFile(cfgPath, []byte(hcl), 0o644); err != nil {
		return fail(err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	cmd := exec.Command(exe, "node", "--config", cfgPath)
	cmd.Stderr = logTo
	// A bench killed outright takes its node along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	exited := make(chan error, 1)
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := nodeAnnouncement.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1]
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case addr := <-addrCh:
		return &embeddedNode{dir: dir, path: cfg.Storage.Path, addr: addr, shutdown: func() error {
			// SIGTERM is a graceful stop: exit status 0.
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				return err
			}
			if err := <-exited; err != nil {
				return fmt.Errorf("bench: node process: %w", err)
			}
			return nil
		}}, nil
	case err := <-exited:
		return fail(fmt.Errorf("exited before serving: %v", err))
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-exited
		return fail(ctx.Err())
	}
}

// stop shuts the node down and removes its data.
func (e *embeddedNode) stop() error {
	err := e.shutdown()
	if rerr := os.RemoveAll(e.dir); err == nil {
		err = rerr
	}
	return err
}

// fsyncRate measures how many 100-byte appends, each followed by an
// fsync, a file in dir takes per second, one after another: the commit
// rate of a server that fsyncs every transaction on its own.
func fsyncRate(dir string, d time.Duration) (float64, error) {
	f, err := os.CreateTemp(dir, "zrs-fsync-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	rec := make([]byte, 100)
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if _, err := f.Write(rec); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// opKind is a kind of measured operation.
type opKind int

const (
	opLoad opKind = iota
	opCommit
	numOpKinds
)

func (k opKind) String() string { return [...]string{"load", "commit"}[k] }

// opStats are one worker's (or, merged, all workers') measurements of
// one kind of operation.
type opStats struct {
	latencies []time.Duration // of successful operations
	conflicts int
	failed    int
}

type benchResult struct {
	elapsed  time.Duration
	ops      [numOpKinds]opStats
	firstErr error
}

func (r *benchResult) errors() int {
	n := 0
	for _, s := range r.ops {
		n += s.failed
	}
	return n
}

// benchmark preloads the objects, runs the workers for cfg.duration (or
// until ctx is done) and returns their merged measurements.
func benchmark(ctx context.Context, cfg *benchConfig, addr string) (*benchResult, error) {
	opts := client.Options{CacheBytes: -1}
	if cfg.cache {
		opts.CacheBytes = 0 // the client's default
	}
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	clients := make([]*client.Client, cfg.connections)
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.Close()
			}
		}
	}()
	for i := range clients {
		cl, err := client.Dial(dialCtx, addr, opts)
		if err != nil {
			return nil, fmt.Errorf("bench: connect to %s: %w", addr, err)
		}
		clients[i] = cl
	}
	payload := make([]byte, cfg.objectSize)
	rand.Read(payload)
	objects, err := preload(dialCtx, clients[0], cfg.objects, payload)
	if err != nil {
		return nil, fmt.Errorf("bench: preload: %w", err)
	}

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		res     = &benchResult{}
		workers = make([]*benchWorker, len(clients)*cfg.inflight)
	)
	for i := range workers {
		cl := clients[i%len(clients)]
		w := &benchWorker{cfg: cfg, cl: cl, objects: objects, payload: payload,
			rng: mrand.New(mrand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))}
		if cfg.commitWeight > 0 {
			// Each worker commits to an object of its own.
			oids, err := cl.NewOids(dialCtx, 1)
			if err != nil || len(oids) != 1 {
				return nil, fmt.Errorf("bench: new_oids: %v", err)
			}
			w.oid = oids[0]
		}
		workers[i] = w
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	end := start.Add(cfg.duration)
	// Operations in progress at the end may finish; a server that does not
	// answer within 30 s fails them.
	opCtx, cancelOps := context.WithDeadline(context.WithoutCancel(ctx), end.Add(30*time.Second))
	defer cancelOps()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx, opCtx, end)
			mu.Lock()
			defer mu.Unlock()
			for k := range w.ops {
				res.ops[k].latencies = append(res.ops[k].latencies, w.ops[k].latencies...)
				res.ops[k].conflicts += w.ops[k].conflicts
				res.ops[k].failed += w.ops[k].failed
			}
			if res.firstErr == nil {
				res.firstErr = w.firstErr
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	for k := range res.ops {
		slices.Sort(res.ops[k].latencies)
	}
	return res, nil
}

// preload commits n objects holding payload, in transactions of at most
// 1000 objects, and returns their oids.
func preload(ctx context.Context, cl *client.Client, n int, payload []byte) ([]storage.Oid, error) {
	oids := make([]storage.Oid, 0, n)
	for len(oids) < n {
		batch, err := cl.NewOids(ctx, min(100, n-len(oids)))
		if err != nil {
			return nil, err
		}
		oids = append(oids, batch...)
	}
	oids = oids[:n]
	for chunk := range slices.Chunk(oids, 1000) {
		txn := cl.Begin(client.TxnMeta{User: "zrs bench", Description: "preload"})
		for _, oid := range chunk {
			txn.Store(oid, 0, payload)
		}
		if _, err := txn.Commit(ctx); err != nil {
			return nil, err
		}
	}
	return oids, nil
}

// benchWorker runs operations on a client one at a time; --inflight
// workers share each client.
type benchWorker struct {
	cfg      *benchConfig
	cl       *client.Client
	rng      *mrand.Rand
	objects  []storage.Oid
	payload  []byte
	oid      storage.Oid // the object this worker commits to
	serial   storage.Tid // its current revision, 0 before the first commit
	ops      [numOpKinds]opStats
	firstErr error
}

// run measures operations until end or until ctx is done. Operations
// themselves use opCtx, so that the end of the run does not count as a
// failure.
func (w *benchWorker) run(ctx, opCtx context.Context, end time.Time) {
	total := w.cfg.loadWeight + w.cfg.commitWeight
	for ctx.Err() == nil {
		kind := opCommit
		if w.rng.IntN(total) < w.cfg.loadWeight {
			kind = opLoad
		}
		t0 := time.Now()
		err := w.op(opCtx, kind)
		t1 := time.Now()
		s := &w.ops[kind]
		var ce *storage.ConflictError
		switch {
		case errors.As(err, &ce):
			s.conflicts++
			w.serial = ce.Committed
		case err != nil:
			s.failed++
			if w.firstErr == nil {
				w.firstErr = fmt.Errorf("%s: %w", kind, err)
			}
		default:
			s.latencies = append(s.latencies, t1.Sub(t0))
		}
		if !t1.Before(end) {
			return
		}
	}
}

func (w *benchWorker) op(ctx context.Context, kind opKind) error {
	if kind == opLoad {
		_, _, err := w.cl.Load(ctx, w.objects[w.rng.IntN(len(w.objects))])
		return err
	}
	txn := w.cl.Begin(client.TxnMeta{User: "zrs bench"})
	txn.Store(w.oid, w.serial, w.payload)
	tid, err := txn.Commit(ctx)
	if err == nil {
		w.serial = tid
	}
	return err
}

// baselines are the machine's limits measured before the run; zero when
// not measured.
type baselines struct {
	fsyncs     float64 // serial fsyncs per second
	roundTrips float64 // bare TCP round trips per second
}

func printBench(out io.Writer, cfg *benchConfig, where string, res *benchResult, base baselines) {
	cache := "off"
	if cfg.cache {
		cache = "on"
	}
	fmt.Fprintf(out, "zrs bench: %s\n", where)
	fmt.Fprintf(out, "%d connection(s) × %d in flight, %s, mix %d:%d (loads:commits), %d preloaded objects of %d bytes, client cache %s\n\n",
		cfg.connections, cfg.inflight, res.elapsed.Round(time.Millisecond), cfg.loadWeight, cfg.commitWeight, cfg.objects, cfg.objectSize, cache)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\toperations\tper second\tp50\tp99\tmax\tconflicts\terrors\t")
	secs := res.elapsed.Seconds()
	totalOps := 0
	for k := range numOpKinds {
		s := &res.ops[k]
		n := len(s.latencies)
		totalOps += n
		if n == 0 && s.conflicts == 0 && s.failed == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%d\t%d\t\n", k, n, float64(n)/secs,
			fmtLatency(percentile(s.latencies, 50)), fmtLatency(percentile(s.latencies, 99)),
			fmtLatency(percentile(s.latencies, 100)), s.conflicts, s.failed)
	}
	fmt.Fprintf(tw, "total\t%d\t%.0f\t\t\t\t\t\t\n", totalOps, float64(totalOps)/secs)
	tw.Flush()
	if base.fsyncs > 0 {
		commits := float64(len(res.ops[opCommit].latencies)) / secs
		fmt.Fprintf(out, "\nfsync baseline: %.0f serial fsyncs per second (100-byte append + fsync, %s, in %s)\n",
			base.fsyncs, cfg.fsyncDuration, cfg.dataDir)
		fmt.Fprintf(out, "commits per second / fsyncs per second = %.0f / %.0f = %.2f\n", commits, base.fsyncs, commits/base.fsyncs)
	}
	if base.roundTrips > 0 {
		over := "loopback TCP"
		if cfg.network == "unix" {
			over = "Unix socket"
		}
		fmt.Fprintf(out, "\nnetwork baseline: %.0f round trips per second over %d connection(s) (%s, %d-byte request, %d-byte reply, %s)\n",
			base.roundTrips, cfg.connections, over, baselineRequest, baselineReply, cfg.netDuration)
		fmt.Fprintf(out, "operations per second / round trips per second = %.0f / %.0f = %.2f\n",
			float64(totalOps)/secs, base.roundTrips, float64(totalOps)/secs/base.roundTrips)
	}
}

// percentile returns the p-th percentile (nearest rank) of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

func fmtLatency(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
