package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zrs-go/zrs/storage"
)

func dumpCommand() *cli.Command {
	return &cli.Command{
		Name:      "dump",
		Usage:     "list the transactions and data records of a FileStorage data file",
		ArgsUsage: "PATH",
		Description: "Prints one entry per transaction (tid, size, UTC time, offset of its first data\n" +
			"record, status, user, description) and one line per data record (oid, size,\n" +
			"class, and for records without data of their own the backpointer offset), in\n" +
			"the layout of ZODB's fsdump. Stops with an error at the first damaged spot.",
		Action: runDump,
	}
}

func runDump(c *cli.Context) error {
	path, err := pathArg(c)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := storage.Dump(c.App.Writer, path); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	logger(c).Debug("dumped", "path", path, "elapsed", time.Since(start))
	return nil
}
