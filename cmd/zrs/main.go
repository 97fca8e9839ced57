// Command zrs is the zrs storage server and its tools.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	app := &cli.App{
		Name:  "zrs",
		Usage: "ZODB storage server with replication and ZooKeeper-coordinated failover",
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "zrs:", err)
		os.Exit(1)
	}
}
