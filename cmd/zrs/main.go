// Command zrs is the zrs storage server and its tools.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/zrs-go/zrs/storage"
)

// Exit statuses, so that scripts can tell a damaged file from a failure to
// check it.
const (
	exitOK      = 0
	exitDamaged = 1 // the data file is damaged (storage.ErrCorrupt)
	exitFailed  = 2 // any other error: usage, missing file, I/O
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status; main is
// only this plus os.Exit, so tests can run every command in-process.
func run(args []string, stdout, stderr io.Writer) int {
	err := newApp(stdout, stderr).Run(args)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "zrs:", err)
	if errors.Is(err, storage.ErrCorrupt) {
		return exitDamaged
	}
	return exitFailed
}

// newApp builds the command-line application writing results to stdout and
// logs and errors to stderr.
func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "zrs",
		Usage: "ZODB storage server with replication and ZooKeeper-coordinated failover",
		Description: fmt.Sprintf("Exit status: %d on success, %d when a data file is damaged, %d on any other error.",
			exitOK, exitDamaged, exitFailed),
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:  "log-level",
				Value: "info",
				Usage: "least severe log messages written to stderr: trace, debug, info, warn or error",
			},
		},
		Before: func(c *cli.Context) error {
			if hclog.LevelFromString(c.String("log-level")) == hclog.NoLevel {
				return fmt.Errorf("unknown --log-level %q", c.String("log-level"))
			}
			return nil
		},
		Commands: []*cli.Command{nodeCommand(), withConfigImport(configCommand()), statusCommand(), switchoverCommand(), pauseCommand(), resumeCommand(), verifyCommand(), dumpCommand(), benchCommand(), workloadCommand()},
		// cli would call os.Exit for errors that carry an exit code; run
		// chooses the status instead, so that tests can call Run.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// logger returns the logger for a command, writing to the app's stderr at
// the level of --log-level.
func logger(c *cli.Context) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "zrs",
		Level:  hclog.LevelFromString(c.String("log-level")),
		Output: c.App.ErrWriter,
	})
}

// pathArg returns the single PATH argument of a command.
func pathArg(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("%s: expected one PATH argument, got %d (usage: %s %s)",
			c.Command.Name, c.NArg(), c.Command.HelpName, c.Command.ArgsUsage)
	}
	return c.Args().First(), nil
}
