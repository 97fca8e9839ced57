package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/zrs-go/zrs/registry"
	"github.com/zrs-go/zrs/storage"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show a ZooKeeper-coordinated cluster as a table",
		Description: "Reads the cluster's znodes and prints one row per registered node: its role (the\n" +
			"holder of the primary znode is marked *), the epoch it has seen, its last\n" +
			"transaction and that transaction's time, how far it is behind the primary, its\n" +
			"upstream, and whether it is a member of the synchronous set.",
		Flags:  clusterFlags(),
		Action: runStatus,
	}
}

// clusterFlags are the flags of commands that talk to a cluster's
// ZooKeeper.
func clusterFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "zookeeper", Aliases: []string{"zk"}, Required: true, Usage: "comma-separated ZooKeeper `HOSTS` (host:port)"},
		&cli.StringFlag{Name: "root", Usage: "the cluster's root `PATH` (default /zrs/<cluster>)"},
		&cli.StringFlag{Name: "cluster", Value: "main", Usage: "cluster `NAME`, used when --root is not given"},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "how long to wait for ZooKeeper"},
	}, extra...)
}

// clusterConfig is the registry configuration the cluster flags give.
func clusterConfig(c *cli.Context) (registry.Config, error) {
	cfg := registry.Config{
		Servers: strings.Split(c.String("zookeeper"), ","),
		Cluster: c.String("cluster"),
		Root:    c.String("root"),
	}.WithDefaults()
	return cfg, cfg.Validate()
}

// connectCluster opens a ZooKeeper session for a cluster command; the
// context ends after --timeout.
func connectCluster(c *cli.Context) (*registry.Session, context.Context, context.CancelFunc, error) {
	cfg, err := clusterConfig(c)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	log := logger(c)
	if !c.IsSet("log-level") {
		log.SetLevel(hclog.Warn) // the command's output is what matters; session chatter is noise
	}
	s, err := registry.Connect(ctx, cfg, log)
	if err != nil {
		cancel()
		return nil, nil, nil, fmt.Errorf("%s: ZooKeeper %s: %w", c.Command.Name, strings.Join(cfg.Servers, ","), err)
	}
	return s, ctx, cancel, nil
}

func runStatus(c *cli.Context) error {
	s, ctx, cancel, err := connectCluster(c)
	if err != nil {
		return err
	}
	defer cancel()
	defer s.Close()
	nodes, err := s.ReadNodes(ctx)
	if err != nil {
		return fmt.Errorf("status: read nodes: %w", err)
	}
	primary, err := s.ReadPrimary(ctx)
	if err != nil {
		return fmt.Errorf("status: read primary: %w", err)
	}
	epoch, err := s.ReadEpoch(ctx)
	if err != nil {
		return fmt.Errorf("status: read epoch: %w", err)
	}
	sync, err := s.ReadSync(ctx)
	if err != nil {
		return fmt.Errorf("status: read sync: %w", err)
	}
	control, err := s.ReadControl(ctx)
	if err != nil {
		return fmt.Errorf("status: read maintenance and switchover: %w", err)
	}
	printStatus(c.App.Writer, s.Config().Root, nodes, primary, epoch, sync)
	if m := control.Maintenance; m != nil && m.Paused {
		fmt.Fprintf(c.App.Writer, "PAUSED for maintenance since %s by %s: no automatic failover (zrs resume ends it)\n",
			m.Since.Format(time.RFC3339), m.By)
	}
	if sw := control.Switchover; sw != nil && sw.Epoch == epoch.Value {
		fmt.Fprintf(c.App.Writer, "switchover from %s to %s requested at %s\n", sw.From, sw.To, sw.Requested.Format(time.RFC3339))
	}
	return nil
}

// printStatus writes the cluster table.
func printStatus(w io.Writer, root string, nodes []registry.NodeRecord, primary registry.PrimaryView,
	epoch registry.Epoch, sync registry.SyncRecord) {
	head := "no primary"
	if primary.Present {
		head = fmt.Sprintf("primary %s (epoch %d)", primary.Record.Name, primary.Record.Epoch)
	}
	fmt.Fprintf(w, "cluster %s: %s, epoch %d, %d node(s)\n", root, head, epoch.Value, len(nodes))
	// Lag is measured against the primary's last transaction, or the
	// freshest node's when there is no primary.
	var ref storage.Tid
	for _, n := range nodes {
		if primary.Present && n.Name == primary.Record.Name {
			ref = n.LastTid
			break
		}
		ref = max(ref, n.LastTid)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tEPOCH\tLAST TID\tTIME (UTC)\tLAG\tUPSTREAM\tSYNC")
	for _, n := range nodes {
		role := string(n.Role)
		if primary.Present && n.Name == primary.Record.Name {
			role += "*"
		}
		when, lag := "-", "-"
		if n.LastTid != 0 {
			when = n.LastTid.Time().Format("2006-01-02 15:04:05.000")
			lag = (time.Duration((ref.Seconds() - n.LastTid.Seconds()) * float64(time.Second))).Round(time.Millisecond).String()
		}
		member := "-"
		if sync.Epoch == epoch.Value && len(sync.Members) > 0 {
			member = "no"
			if slices.Contains(sync.Members, n.Name) || n.Name == sync.Primary {
				member = "yes"
			}
		}
		upstream := n.Upstream
		if upstream == "" {
			upstream = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", n.Name, role, n.Epoch, n.LastTid, when, lag, upstream, member)
	}
	tw.Flush()
}
