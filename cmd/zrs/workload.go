package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/zrs-go/zrs/client"
	"github.com/zrs-go/zrs/integration/chaos"
	"github.com/zrs-go/zrs/registry"
	"github.com/zrs-go/zrs/storage"
)

func workloadCommand() *cli.Command {
	return &cli.Command{
		Name:  "workload",
		Usage: "run a recorded read/write workload against a cluster (for the chaos suite)",
		Description: "Writers load a random key from the primary and commit a new unique value stored\n" +
			"against the serial they loaded (a compare-and-set); readers load random keys from\n" +
			"the secondaries. Every operation is appended to DIR/history.jsonl with its start\n" +
			"and end time and outcome (ok, fail, unknown); on SIGTERM or SIGINT, or after\n" +
			"--duration, the workload stops and writes DIR/summary.json. The history is\n" +
			"checked by the chaos suite (integration/chaos).",
		Flags: clusterFlags(
			&cli.IntFlag{Name: "writers", Value: 4, Usage: "concurrent writers, each with its own client"},
			&cli.IntFlag{Name: "readers", Value: 2, Usage: "concurrent readers on the secondaries, each with its own client"},
			&cli.IntFlag{Name: "keys", Value: 200, Usage: "number of keys (objects) written and read"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (0: until SIGTERM or SIGINT)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "`DIR` for history.jsonl and summary.json"},
			&cli.Int64Flag{Name: "seed", EnvVars: []string{"ZRS_WORKLOAD_SEED"}, Usage: "random seed (0: from the clock)"},
			&cli.DurationFlag{Name: "read-pause", Value: 10 * time.Millisecond, Usage: "pause between a reader's loads"},
			&cli.DurationFlag{Name: "commit-timeout", Value: 10 * time.Second, Usage: "how long one commit may take"},
		),
		Action: runWorkload,
	}
}

func runWorkload(c *cli.Context) error {
	cfg, err := clusterConfig(c)
	if err != nil {
		return err
	}
	writers, readers, keys := c.Int("writers"), c.Int("readers"), c.Int("keys")
	if writers < 0 || readers < 0 || keys <= 0 || writers+readers == 0 {
		return fmt.Errorf("workload: need keys > 0 and at least one writer or reader")
	}
	seed := c.Int64("seed")
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	out := c.String("out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	rec, err := chaos.NewRecorder(filepath.Join(out, "history.jsonl"))
	if err != nil {
		return err
	}
	log := logger(c)
	clientLog := log
	if !c.IsSet("log-level") {
		// The clients' own reports at WARN (disconnections, refused
		// servers) explain gaps in the history; their chatter below
		// that stays out unless asked for.
		clientLog = hclog.New(&hclog.LoggerOptions{Name: "client", Level: hclog.Warn, Output: c.App.ErrWriter})
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if d := c.Duration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	w := &workload{
		cfg: cfg, rec: rec, log: log, clientLog: clientLog, clock: chaos.NewClock(), keys: keys,
		readPause: c.Duration("read-pause"), commitTimeout: c.Duration("commit-timeout"),
		summary: chaos.Summary{Seed: seed, Writers: writers, Readers: readers, Keys: keys,
			Outcomes: map[string]int{}, Errors: map[string]int{}},
	}
	w.summary.Start = w.clock.Now()
	log.Info("workload starting", "writers", writers, "readers", readers, "keys", keys, "seed", seed, "out", out)
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			w.writer(ctx, i, rand.New(rand.NewSource(seed+int64(i))))
		}(i)
	}
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			w.reader(ctx, i, rand.New(rand.NewSource(seed+1000+int64(i))))
		}(i)
	}
	// Progress, so that the container's log shows it is alive.
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.mu.Lock()
				log.Info("progress", "ops", rec.Count(), "write_ok", w.summary.Outcomes["write/ok"],
					"write_unknown", w.summary.Outcomes["write/unknown"], "write_fail", w.summary.Outcomes["write/fail"])
				w.mu.Unlock()
			}
		}
	}()
	wg.Wait()
	w.summary.End = w.clock.Now()
	w.summary.Ops = rec.Count()
	err = rec.Close()
	j, _ := json.MarshalIndent(w.summary, "", "  ")
	if werr := os.WriteFile(filepath.Join(out, "summary.json"), append(j, '\n'), 0o644); err == nil {
		err = werr
	}
	log.Info("workload stopped", "ops", w.summary.Ops, "outcomes", fmt.Sprint(w.summary.Outcomes))
	if err != nil {
		return fmt.Errorf("workload: writing the history: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "%s\n", j)
	return nil
}

type workload struct {
	cfg                      registry.Config
	rec                      *chaos.Recorder
	log, clientLog           hclog.Logger
	clock                    chaos.Clock
	keys                     int
	readPause, commitTimeout time.Duration

	mu      sync.Mutex
	summary chaos.Summary
}

// record records op and counts it.
func (w *workload) record(op chaos.Op) {
	w.rec.Record(op)
	w.mu.Lock()
	k := op.Kind + "/" + op.Outcome
	if op.Conflict {
		k += "/conflict"
	}
	w.summary.Outcomes[k]++
	if op.Error != "" {
		// Counted by kind: without oids, tids and numbers.
		e := errNoise.ReplaceAllString(op.Error, "#")
		if len(e) > 160 {
			e = e[:160]
		}
		w.summary.Errors[op.Kind+": "+e]++
	}
	w.mu.Unlock()
}

// dial connects a client to the cluster, retrying until ctx ends.
func (w *workload) dial(ctx context.Context, readOnly bool) (*client.Client, error) {
	for {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		cl, err := client.DialCluster(dctx, w.cfg, client.Options{
			ReadOnly:   readOnly,
			CacheBytes: -1, // every load asks a server
			MinBackoff: 50 * time.Millisecond,
			MaxBackoff: time.Second,
			Logger:     w.clientLog,
		})
		cancel()
		if err == nil {
			return cl, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		w.log.Warn("connecting to the cluster failed; retrying", "read_only", readOnly, "error", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// load reads key: its value ("" when the object does not exist yet) and
// serial.
func load(ctx context.Context, cl *client.Client, key int) (string, storage.Tid, error) {
	data, serial, err := cl.Load(ctx, chaos.KeyOid(key))
	var noObj *storage.NoObjectError
	if errors.As(err, &noObj) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	return string(data), serial, nil
}

// read loads key through cl and returns the operation as recorded: ok
// with the value read, or failed with the error (also returned).
func (w *workload) read(ctx context.Context, cl *client.Client, proc string, key int) (chaos.Op, storage.Tid, error) {
	start := w.clock.Now()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	v, serial, err := load(lctx, cl, key)
	cancel()
	op := chaos.Op{Process: proc, Kind: chaos.KindRead, Key: key, Value: v, Start: start, End: w.clock.Now(),
		Outcome: chaos.OutcomeOK, Server: cl.ServerAddr(), Epoch: cl.Epoch()}
	if err != nil {
		op.Value, op.Outcome, op.Error = "", chaos.OutcomeFail, err.Error()
	}
	return op, serial, err
}

func (w *workload) writer(ctx context.Context, id int, rng *rand.Rand) {
	proc := fmt.Sprintf("w%d", id)
	cl, err := w.dial(ctx, false)
	if err != nil {
		return
	}
	defer cl.Close()
	for seq := 0; ctx.Err() == nil; {
		key := rng.Intn(w.keys)
		// Read the key from the primary.
		rop, serial, err := w.read(ctx, cl, proc, key)
		if err != nil {
			if ctx.Err() != nil {
				return // stopping: not an outcome of the cluster's
			}
			w.record(rop)
			pause(ctx, 50*time.Millisecond)
			continue
		}
		w.record(rop)
		// Compare-and-set it to a new unique value.
		value := fmt.Sprintf("%s-%d", proc, seq)
		seq++
		txn := cl.Begin(client.TxnMeta{User: "workload", Description: fmt.Sprintf("%s k%d", proc, key)})
		txn.Store(chaos.KeyOid(key), serial, []byte(value))
		start := w.clock.Now()
		// The commit gets its own deadline, not ctx: a commit cut short
		// by our own shutdown would only add an unknown outcome.
		cctx, cancel := context.WithTimeout(context.Background(), w.commitTimeout)
		tid, err := txn.Commit(cctx)
		cancel()
		op := chaos.Op{Process: proc, Kind: chaos.KindWrite, Key: key, Value: value, Prev: rop.Value, Start: start, End: w.clock.Now()}
		op.Server, op.Epoch = cl.ServerAddr(), cl.Epoch()
		var conflict *storage.ConflictError
		var notCommitted *client.NotCommittedError
		switch {
		case err == nil:
			op.Outcome, op.Tid = chaos.OutcomeOK, tid.String()
		case errors.As(err, &conflict):
			op.Outcome, op.Conflict = chaos.OutcomeFail, true
		case errors.As(err, &notCommitted):
			op.Outcome = chaos.OutcomeFail
		default:
			// *client.OutcomeUnknownError, and anything unexpected:
			// maybe applied.
			op.Outcome = chaos.OutcomeUnknown
		}
		if err != nil {
			op.Error = err.Error()
		}
		w.record(op)
		if err != nil && !op.Conflict {
			pause(ctx, 50*time.Millisecond)
		}
	}
}

func (w *workload) reader(ctx context.Context, id int, rng *rand.Rand) {
	proc := fmt.Sprintf("r%d", id)
	cl, err := w.dial(ctx, true)
	if err != nil {
		return
	}
	defer cl.Close()
	for ctx.Err() == nil {
		key := rng.Intn(w.keys)
		op, _, err := w.read(ctx, cl, proc, key)
		if err != nil && ctx.Err() != nil {
			return
		}
		w.record(op)
		if err != nil {
			pause(ctx, 50*time.Millisecond)
		} else {
			pause(ctx, w.readPause)
		}
	}
}

// errNoise matches the parts of error messages that differ between
// occurrences of the same error.
var errNoise = regexp.MustCompile(`[0-9a-fA-Fx]*[0-9][0-9a-fA-Fx.:]*`)

func pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
