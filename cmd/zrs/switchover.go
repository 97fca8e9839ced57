package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zrs-go/zrs/registry"
)

func switchoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "switchover",
		Usage: "hand the primary role to another node, losing no commit",
		Description: "Asks the primary to stop taking commits, wait until the target has durably\n" +
			"acknowledged everything, and resign; the target then takes over at once under a\n" +
			"new epoch and the old primary becomes its secondary. Without --to the freshest\n" +
			"eligible secondary is chosen. Refuses when the target cannot take over.",
		Flags: clusterFlags(
			&cli.StringFlag{Name: "to", Usage: "target node `NAME`"},
			&cli.DurationFlag{Name: "wait", Value: 30 * time.Second, Usage: "how long to wait for the new primary"},
		),
		Action: runSwitchover,
	}
}

func pauseCommand() *cli.Command {
	return &cli.Command{
		Name:        "pause",
		Usage:       "maintenance mode: no automatic failover until zrs resume",
		Description: "Stored in ZooKeeper; while paused no node runs for primary when the primary\nis lost (a planned switchover still works). zrs status shows it.",
		Flags:       clusterFlags(),
		Action:      func(c *cli.Context) error { return setPaused(c, true) },
	}
}

func resumeCommand() *cli.Command {
	return &cli.Command{
		Name:   "resume",
		Usage:  "end maintenance mode: automatic failover again",
		Flags:  clusterFlags(),
		Action: func(c *cli.Context) error { return setPaused(c, false) },
	}
}

func setPaused(c *cli.Context, paused bool) error {
	s, ctx, cancel, err := connectCluster(c)
	if err != nil {
		return err
	}
	defer cancel()
	defer s.Close()
	host, _ := os.Hostname()
	if err := s.SetPaused(ctx, paused, fmt.Sprintf("zrs %s (pid %d on %s)", c.Command.Name, os.Getpid(), host)); err != nil {
		return fmt.Errorf("%s: %w", c.Command.Name, err)
	}
	if paused {
		fmt.Fprintf(c.App.Writer, "cluster %s paused: no automatic failover until `zrs resume`\n", s.Config().Root)
	} else {
		fmt.Fprintf(c.App.Writer, "cluster %s resumed: automatic failover is on\n", s.Config().Root)
	}
	return nil
}

// errNotEligible is wrapped by refusals of a switchover target.
var errNotEligible = errors.New("not eligible")

// switchoverTarget checks the requested target, or picks the best one:
// a secondary replicating directly from the primary at its epoch, not
// marked no_failover; synchronous members first, then the freshest, the
// highest priority, the lowest name.
func switchoverTarget(want string, primary registry.PrimaryRecord, nodes []registry.NodeRecord, sync registry.SyncRecord) (string, error) {
	check := func(n registry.NodeRecord) error {
		switch {
		case n.Name == primary.Name:
			return fmt.Errorf("%w: %s is the primary already", errNotEligible, n.Name)
		case n.NoFailover:
			return fmt.Errorf("%w: %s is configured no_failover", errNotEligible, n.Name)
		case n.Role != registry.RoleSecondary:
			return fmt.Errorf("%w: %s is %s, not a secondary", errNotEligible, n.Name, n.Role)
		case n.Epoch != primary.Epoch:
			return fmt.Errorf("%w: %s follows epoch %d, not the primary's %d", errNotEligible, n.Name, n.Epoch, primary.Epoch)
		case n.Upstream != primary.Name:
			return fmt.Errorf("%w: %s replicates from %s, not directly from the primary %s", errNotEligible, n.Name, n.Upstream, primary.Name)
		}
		return nil
	}
	if want != "" {
		i := slices.IndexFunc(nodes, func(n registry.NodeRecord) bool { return n.Name == want })
		if i < 0 {
			return "", fmt.Errorf("%w: no live node named %s", errNotEligible, want)
		}
		return want, check(nodes[i])
	}
	var eligible []registry.NodeRecord
	var why []string
	for _, n := range nodes {
		if err := check(n); err != nil {
			why = append(why, err.Error())
			continue
		}
		eligible = append(eligible, n)
	}
	if len(eligible) == 0 {
		return "", fmt.Errorf("%w: no secondary can take over (%v)", errNotEligible, why)
	}
	member := func(n registry.NodeRecord) int {
		if sync.Epoch == primary.Epoch && slices.Contains(sync.Members, n.Name) {
			return 1
		}
		return 0
	}
	best := slices.MinFunc(eligible, func(a, b registry.NodeRecord) int {
		return cmp.Or(
			cmp.Compare(member(b), member(a)),
			cmp.Compare(b.LastTid, a.LastTid),
			cmp.Compare(b.Priority, a.Priority),
			cmp.Compare(a.Name, b.Name),
		)
	})
	return best.Name, nil
}

func runSwitchover(c *cli.Context) error {
	s, ctx, cancel, err := connectCluster(c)
	if err != nil {
		return err
	}
	defer cancel()
	defer s.Close()
	pv, err := s.ReadPrimary(ctx)
	if err != nil {
		return fmt.Errorf("switchover: read primary: %w", err)
	}
	if !pv.Present {
		return errors.New("switchover: there is no primary to hand over from (an election may be in progress)")
	}
	nodes, err := s.ReadNodes(ctx)
	if err != nil {
		return fmt.Errorf("switchover: read nodes: %w", err)
	}
	sync, err := s.ReadSync(ctx)
	if err != nil {
		return fmt.Errorf("switchover: read sync: %w", err)
	}
	from := pv.Record
	to, err := switchoverTarget(c.String("to"), from, nodes, sync)
	if err != nil {
		return fmt.Errorf("switchover refused: %w", err)
	}
	start := time.Now()
	if err := s.RequestSwitchover(ctx, registry.SwitchoverRecord{From: from.Name, To: to, Epoch: from.Epoch}); err != nil {
		return fmt.Errorf("switchover: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "switchover: asked %s (epoch %d) to hand over to %s\n", from.Name, from.Epoch, to)
	deadline := time.Now().Add(c.Duration("wait"))
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		pv, err := s.ReadPrimary(c.Context)
		if err == nil && pv.Present && pv.Record.Name == to && pv.Record.Epoch > from.Epoch {
			fmt.Fprintf(c.App.Writer, "switchover: %s is primary at epoch %d (%v after the request)\n",
				to, pv.Record.Epoch, time.Since(start).Round(time.Millisecond))
			return nil
		}
		ctl, err := s.ReadControl(c.Context)
		if err != nil || ctl.Switchover != nil {
			continue
		}
		// The request is gone: fulfilled (the new primary clears it) or
		// abandoned (the old one does).
		if pv, err := s.ReadPrimary(c.Context); err == nil && pv.Present && pv.Record.Name == to {
			continue
		}
		return fmt.Errorf("switchover to %s abandoned by %s (see its log: the target did not catch up in time)", to, from.Name)
	}
	_ = s.ClearSwitchover(c.Context)
	return fmt.Errorf("switchover to %s: no new primary within %v", to, c.Duration("wait"))
}
