package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/zrs-go/zrs/node"
)

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:  "node",
		Usage: "run a zrs node: serve a FileStorage to ZEO clients",
		Description: "Without --config, serves DATA_DIR/Data.fs (created if missing) on 127.0.0.1:8100\n" +
			"for clients registering storage \"1\". SIGTERM or SIGINT stops the node gracefully:\n" +
			"it stops accepting, aborts transactions in progress, closes connections and writes\n" +
			"the .index file.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "HCL configuration `FILE`"},
			&cli.StringFlag{Name: "data-dir", Value: "zrs-data", Usage: "`DIR` for the data file when no --config is given"},
		},
		Action: runNode,
	}
}

func runNode(c *cli.Context) error {
	var cfg *node.Config
	if path := c.String("config"); path != "" {
		var err error
		if cfg, err = node.LoadConfig(path); err != nil {
			return err
		}
	} else {
		dir := c.String("data-dir")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		cfg = node.Default(dir)
	}
	level := cfg.Log.Level
	if c.IsSet("log-level") {
		level = c.String("log-level")
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "zrs",
		Level:      hclog.LevelFromString(level),
		JSONFormat: cfg.Log.JSON,
		Output:     c.App.ErrWriter,
	}).With("node", cfg.Name)

	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "zrs node %s: ZEO clients connect to %s (storage %q, data file %s)\n",
		cfg.Name, n.ZEOAddr(), cfg.Storage.Name, cfg.Storage.Path)
	if f, ok := c.App.Writer.(*os.File); ok && isTerminal(f) {
		n.OnReplicationProgress(func(p node.Progress) {
			line := fmt.Sprintf("catching up: %d transactions, %.1f MB, %.0f/s, at %s",
				p.Transactions, float64(p.Bytes)/1e6, p.Rate, p.At.Time().Format(time.RFC3339))
			if p.Left > 0 {
				line += fmt.Sprintf(", about %s left", p.Left)
			}
			fmt.Fprintf(f, "\r%-100s", line)
		})
	}
	return n.Run(ctx)
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "work with node configuration files",
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "validate a node configuration file",
			ArgsUsage: "FILE",
			Action: func(c *cli.Context) error {
				path, err := pathArg(c)
				if err != nil {
					return err
				}
				if _, err := node.LoadConfig(path); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "%s: ok\n", path)
				return nil
			},
		}},
	}
}
