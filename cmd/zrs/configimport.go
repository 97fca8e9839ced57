package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/urfave/cli/v2"

	"github.com/zrs-go/zrs/node"
)

// withConfigImport adds `import` to the subcommands of `zrs config`.
func withConfigImport(config *cli.Command) *cli.Command {
	config.Subcommands = append(config.Subcommands, configImportCommand())
	return config
}

func configImportCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "convert a ZEO or zc.zrs ZConfig file (zeo.conf) to a node configuration",
		ArgsUsage: "ZEO.CONF",
		Description: "Reads the file `runzeo -C` takes, with <zeo>, <filestorage>, <zrs> and\n" +
			"<eventlog> sections, and prints the equivalent HCL configuration. Each setting\n" +
			"that cannot be carried over is reported on stderr with its line number. The\n" +
			"result is validated as `zrs config check` would before it is written.\n" +
			"Flags go before the file name: zrs config import -o node.hcl zeo.conf",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the configuration to `FILE` instead of stdout"},
		},
		Action: runConfigImport,
	}
}

func runConfigImport(c *cli.Context) error {
	path, err := pathArg(c)
	if err != nil {
		return err
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	res, err := node.ImportZConfig(path, src, node.ZConfigOptions{LookupEnv: os.LookupEnv})
	if res != nil {
		for _, n := range res.Notes {
			fmt.Fprintln(c.App.ErrWriter, n.Format(path))
		}
	}
	var diags hcl.Diagnostics
	if errors.As(err, &diags) {
		return fmt.Errorf("%s: the converted configuration is not valid: %w\n--- converted configuration:\n%s", path, err, res.HCL)
	}
	if err != nil {
		return err
	}
	out := c.String("output")
	if out == "" {
		_, err = c.App.Writer.Write(res.HCL)
		return err
	}
	if err := os.WriteFile(out, res.HCL, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "%s: wrote %s (%d settings not carried over, listed above)\n", path, out, len(res.Notes))
	return nil
}
