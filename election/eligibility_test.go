package election

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zrs-go/zrs/storage"
)

// nodes builds a Nodes map; every node is settled unless named in the spec.
func nodes(ns ...NodeInfo) map[string]NodeInfo {
	m := map[string]NodeInfo{}
	for _, n := range ns {
		m[n.Name] = n
	}
	return m
}

func settled(name string, last storage.Tid, prio int) NodeInfo {
	return NodeInfo{Name: name, LastTid: last, Priority: prio, Settled: true, ReplAddr: name + ":5000"}
}

func TestWinner(t *testing.T) {
	unsettled := func(n NodeInfo) NodeInfo { n.Settled = false; return n }
	nofail := func(n NodeInfo) NodeInfo { n.NoFailover = true; return n }
	tests := []struct {
		name   string
		view   View
		maxLag time.Duration
		want   string // "" = nobody
		why    string // substring of the explanation
	}{
		{name: "empty cluster", view: View{}, want: "", why: "no node is eligible"},
		{name: "freshest wins over priority and name",
			view: View{Nodes: nodes(settled("a", tid(1), 9), settled("b", tid(2), 0))}, want: "b"},
		{name: "equal freshness: higher priority",
			view: View{Nodes: nodes(settled("a", tid(2), 0), settled("b", tid(2), 1), settled("c", tid(1), 5))}, want: "b"},
		{name: "equal freshness and priority: lower name",
			view: View{Nodes: nodes(settled("c", tid(2), 1), settled("b", tid(2), 1), settled("a", tid(1), 1))}, want: "b"},
		{name: "negative priority loses",
			view: View{Nodes: nodes(settled("a", tid(2), -1), settled("b", tid(2), 0))}, want: "b"},
		{name: "no_failover never wins and is left out of freshness",
			view: View{Nodes: nodes(nofail(settled("a", tid(3), 9)), settled("b", tid(2), 0))}, want: "b"},
		{name: "unsettled never wins",
			view: View{Nodes: nodes(unsettled(settled("a", tid(2), 9)), settled("b", tid(2), 0))}, want: "b"},
		{name: "unsettled but fresher blocks the others",
			view: View{Nodes: nodes(unsettled(settled("a", tid(3), 0)), settled("b", tid(2), 0))}, want: "", why: "below the freshest"},
		{name: "max lag 0: behind what was seen",
			view: View{Nodes: nodes(settled("a", tid(2), 0)), LastSeenPrimaryTid: tid(2) + 1}, want: "", why: "max_lag_on_failover"},
		{name: "max lag 0: equal to what was seen",
			view: View{Nodes: nodes(settled("a", tid(2), 0)), LastSeenPrimaryTid: tid(2)}, want: "a"},
		{name: "max lag 0: unknown old primary",
			view: View{Nodes: nodes(settled("a", tid(2), 0))}, want: "a"},
		{name: "max lag 1s: 0.5 s behind",
			view: View{Nodes: nodes(settled("a", tid(2), 0)), LastSeenPrimaryTid: tid(2.5)}, maxLag: time.Second, want: "a"},
		{name: "max lag 1s: exactly 1 s behind",
			view: View{Nodes: nodes(settled("a", tid(2), 0)), LastSeenPrimaryTid: tid(3)}, maxLag: time.Second, want: "a"},
		{name: "max lag 1s: 2 s behind",
			view: View{Nodes: nodes(settled("a", tid(2), 0)), LastSeenPrimaryTid: tid(4)}, maxLag: time.Second, want: ""},
		{name: "sync: member wins over fresher non-member",
			view: View{SyncMode: true, Epoch: 3, Sync: &SyncInfo{Epoch: 3, Primary: "p", Members: []string{"a"}},
				Nodes: nodes(settled("a", tid(1), 0), settled("b", tid(2), 9))}, want: "a", why: "synchronous mode"},
		{name: "sync: the old sync primary is eligible",
			view: View{SyncMode: true, Epoch: 3, Sync: &SyncInfo{Epoch: 3, Primary: "p", Members: []string{"a"}},
				Nodes: nodes(settled("a", tid(1), 0), settled("p", tid(2), 0))}, want: "p"},
		{name: "sync: among members the fresher wins before priority",
			view: View{SyncMode: true, Epoch: 3, Sync: &SyncInfo{Epoch: 3, Primary: "p", Members: []string{"a", "b"}},
				Nodes: nodes(settled("a", tid(1), 9), settled("b", tid(2), 0))}, want: "b"},
		{name: "sync: members tie on tid, priority decides",
			view: View{SyncMode: true, Epoch: 3, Sync: &SyncInfo{Epoch: 3, Primary: "p", Members: []string{"a", "b"}},
				Nodes: nodes(settled("a", tid(2), 0), settled("b", tid(2), 1))}, want: "b"},
		{name: "sync: no member alive means nobody",
			view: View{SyncMode: true, Epoch: 3, Sync: &SyncInfo{Epoch: 3, Primary: "p", Members: []string{"a"}},
				Nodes: nodes(settled("b", tid(2), 0))}, want: "", why: "neither a sync member"},
		{name: "sync: no_failover member is not eligible",
			view: View{SyncMode: true, Epoch: 3, Sync: &SyncInfo{Epoch: 3, Primary: "p", Members: []string{"a", "b"}},
				Nodes: nodes(nofail(settled("a", tid(2), 0)), settled("b", tid(1), 0))}, want: "b"},
		{name: "sync: max lag does not apply",
			view: View{SyncMode: true, Epoch: 3, Sync: &SyncInfo{Epoch: 3, Primary: "p", Members: []string{"a"}},
				Nodes: nodes(settled("a", tid(1), 0)), LastSeenPrimaryTid: tid(9)}, want: "a"},
		{name: "sync degraded: freshest rule",
			view: View{SyncMode: true, Epoch: 3, Sync: &SyncInfo{Epoch: 3, Primary: "p"},
				Nodes: nodes(settled("a", tid(1), 0), settled("b", tid(2), 0))}, want: "b", why: "degraded"},
		{name: "sync znode of an older epoch: freshest rule",
			view: View{SyncMode: true, Epoch: 4, Sync: &SyncInfo{Epoch: 3, Primary: "p", Members: []string{"a"}},
				Nodes: nodes(settled("a", tid(1), 0), settled("b", tid(2), 0))}, want: "b", why: "from epoch 3"},
		{name: "sync mode without sync znode: freshest rule",
			view: View{SyncMode: true, Epoch: 4, Nodes: nodes(settled("a", tid(1), 0), settled("b", tid(2), 0))}, want: "b"},
		{name: "async mode ignores the sync znode",
			view: View{Epoch: 3, Sync: &SyncInfo{Epoch: 3, Primary: "p", Members: []string{"a"}},
				Nodes: nodes(settled("a", tid(1), 0), settled("b", tid(2), 0))}, want: "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := winner(tt.view, tt.maxLag)
			if got != tt.want {
				t.Fatalf("winner = %q, want %q (%s)", got, tt.want, why)
			}
			if why == "" || !strings.Contains(why, tt.why) {
				t.Fatalf("why = %q, want it to mention %q", why, tt.why)
			}
		})
	}
}

func TestOutranks(t *testing.T) {
	tests := []struct {
		a, b NodeInfo
		want bool
	}{
		{settled("a", tid(2), 0), settled("b", tid(1), 9), true},
		{settled("b", tid(1), 9), settled("a", tid(2), 0), false},
		{settled("b", tid(1), 1), settled("a", tid(1), 0), true},
		{settled("a", tid(1), 0), settled("b", tid(1), 0), true},
		{settled("b", tid(1), 0), settled("a", tid(1), 0), false},
	}
	for _, tt := range tests {
		if got := outranks(tt.a, tt.b); got != tt.want {
			t.Errorf("outranks(%s, %s) = %v, want %v", tt.a.Name, tt.b.Name, got, tt.want)
		}
	}
}

func TestLagOK(t *testing.T) {
	tests := []struct {
		seen, last storage.Tid
		maxLag     time.Duration
		want       bool
	}{
		{0, tid(1), 0, true},
		{tid(1), tid(1), 0, true},
		{tid(1), tid(2), 0, true},
		{tid(1) + 1, tid(1), 0, false}, // one tid unit (14 ns) behind
		{tid(1) + 1, tid(1), time.Microsecond, true},
		{tid(3), tid(1), 2 * time.Second, true},
		{tid(3.001), tid(1), 2 * time.Second, false},
	}
	for _, tt := range tests {
		if got, lag := lagOK(tt.seen, tt.last, tt.maxLag); got != tt.want {
			t.Errorf("lagOK(%s, %s, %v) = %v (lag %v), want %v", tt.seen, tt.last, tt.maxLag, got, lag, tt.want)
		}
	}
}

func TestConfig(t *testing.T) {
	d := Default()
	if d.SettleDelay != 500*time.Millisecond || d.MaxLagOnFailover != 0 || d.Priority != 0 || d.NoFailover {
		t.Fatalf("Default() = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	zero := Config{Priority: -5}
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero settle delay and negative priority are valid: %v", err)
	}
	for _, bad := range []Config{{SettleDelay: -1}, {MaxLagOnFailover: -time.Second}} {
		err := bad.Validate()
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v.Validate() = %v, want ErrInvalidConfig", bad, err)
		}
		if _, err := New(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", bad, err)
		}
	}
}

func TestRole(t *testing.T) {
	for _, r := range []Role{Candidate, Primary, Secondary, Fenced} {
		b, err := r.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Role
		if err := back.UnmarshalText(b); err != nil || back != r {
			t.Fatalf("%s round-trips to %s, %v", r, back, err)
		}
	}
	if Role(0) != Candidate || Candidate.String() != "candidate" || Fenced.String() != "fenced" {
		t.Fatalf("role names")
	}
	if s := Role(42).String(); s != "Role(42)" {
		t.Fatalf("Role(42) = %q", s)
	}
	if _, err := Role(42).MarshalText(); !errors.Is(err, ErrUnknownRole) {
		t.Fatalf("MarshalText(42) = %v", err)
	}
	if _, err := ParseRole("leader"); !errors.Is(err, ErrUnknownRole) {
		t.Fatalf("ParseRole(leader) = %v", err)
	}
}

func TestActionsExplainThemselves(t *testing.T) {
	acts := []Action{
		RunForPrimary{Epoch: 1, EpochVersion: 1, NewEpoch: 2, Reason: "r"},
		Promote{Epoch: 2, Reason: "r"},
		Follow{Upstream: "a", ReplAddr: "a:5000", Epoch: 2, Reason: "r"},
		Fence{Reason: "r"},
		Unfence{Epoch: 2, Reason: "r"},
		Demote{Reason: "r"},
	}
	for _, a := range acts {
		if a.Why() != "r" || !strings.HasSuffix(a.String(), ": r") {
			t.Errorf("%T: Why %q, String %q", a, a.Why(), a.String())
		}
	}
}

func TestStepPanicsOnForeignView(t *testing.T) {
	e, _ := New(Default())
	e.Step(View{Self: "a", Connected: true})
	defer func() {
		if recover() == nil {
			t.Fatal("no panic on a view of another node")
		}
	}()
	e.Step(View{Self: "b", Connected: true})
}
