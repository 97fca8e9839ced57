package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zrs-go/zrs/storage"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a FileStorage data file without changing it",
		ArgsUsage: "PATH",
		Description: "Reads PATH from start to end and makes the checks of ZODB's fstest, plus a few\n" +
			"stricter ones (previous-record pointers and backpointers). Prints the number of\n" +
			"transactions, data records and objects and the last transaction id with its UTC\n" +
			"time. A damaged file makes verify fail naming the first problem and its byte offset.",
		Action: runVerify,
	}
}

func runVerify(c *cli.Context) error {
	path, err := pathArg(c)
	if err != nil {
		return err
	}
	log := logger(c)
	start := time.Now()
	rep, err := storage.Check(path)
	if err != nil {
		var fe *storage.FormatError
		if errors.As(err, &fe) && rep != nil {
			// The error says what is wrong; this says how much is sound,
			// which helps decide between truncating and restoring.
			log.Info("sound part before the damage", "path", path,
				"transactions", rep.Transactions, "last_tid", rep.LastTid, "damage_offset", fe.Offset)
		}
		return fmt.Errorf("verify: %w", err)
	}
	log.Debug("verified", "path", path, "bytes", rep.Size, "elapsed", time.Since(start))

	w := c.App.Writer
	last := "none"
	if rep.Transactions > 0 {
		// Rounded, not truncated, to the microsecond as ZODB's TimeStamp
		// prints it: a tid's time is rarely a whole number of nanoseconds.
		t := rep.LastTid.Time().UTC().Round(time.Microsecond)
		last = fmt.Sprintf("%s (%s)", rep.LastTid, t.Format("2006-01-02 15:04:05.000000 MST"))
	}
	_, err = fmt.Fprintf(w, "%s: ok\n  size:         %d bytes\n  transactions: %d\n  data records: %d\n  objects:      %d\n  last tid:     %s\n",
		path, rep.Size, rep.Transactions, rep.DataRecords, rep.Objects, last)
	if err != nil {
		return fmt.Errorf("verify: write report: %w", err)
	}
	return nil
}
