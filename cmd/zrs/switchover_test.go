package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/zrs-go/zrs/registry"
	"github.com/zrs-go/zrs/storage"
)

// TestSwitchoverTarget covers every reason switchoverTarget refuses a
// target, with and without --to, and how it ranks the eligible ones. An
// operator only sees the error text, so each refusal must name its cause.
func TestSwitchoverTarget(t *testing.T) {
	primary := registry.PrimaryRecord{Name: "p", Epoch: 7}
	// secondary is a node that may take over; the cases change one field.
	secondary := func(name string, lastTid uint64, change ...func(*registry.NodeRecord)) registry.NodeRecord {
		n := registry.NodeRecord{Name: name, Role: registry.RoleSecondary, Epoch: 7, Upstream: "p", LastTid: storage.Tid(lastTid)}
		for _, f := range change {
			f(&n)
		}
		return n
	}
	self := registry.NodeRecord{Name: "p", Role: registry.RolePrimary, Epoch: 7, LastTid: 100}
	noFailover := func(n *registry.NodeRecord) { n.NoFailover = true }
	role := func(r registry.Role) func(*registry.NodeRecord) {
		return func(n *registry.NodeRecord) { n.Role = r }
	}
	epoch := func(e uint64) func(*registry.NodeRecord) {
		return func(n *registry.NodeRecord) { n.Epoch = e }
	}
	upstream := func(u string) func(*registry.NodeRecord) {
		return func(n *registry.NodeRecord) { n.Upstream = u }
	}
	priority := func(p int) func(*registry.NodeRecord) {
		return func(n *registry.NodeRecord) { n.Priority = p }
	}

	tests := []struct {
		name  string
		want  string // --to
		nodes []registry.NodeRecord
		sync  registry.SyncRecord
		// pick is the expected target, or "" for a refusal whose text
		// contains every string of why.
		pick string
		why  []string
	}{
		{
			name:  "to: the primary itself",
			want:  "p",
			nodes: []registry.NodeRecord{self, secondary("s1", 100)},
			why:   []string{"p is the primary already"},
		},
		{
			name:  "to: no_failover",
			want:  "s1",
			nodes: []registry.NodeRecord{self, secondary("s1", 100, noFailover)},
			why:   []string{"s1 is configured no_failover"},
		},
		{
			name:  "to: a candidate",
			want:  "s1",
			nodes: []registry.NodeRecord{self, secondary("s1", 100, role(registry.RoleCandidate))},
			why:   []string{"s1 is candidate, not a secondary"},
		},
		{
			name:  "to: a fenced node",
			want:  "s1",
			nodes: []registry.NodeRecord{self, secondary("s1", 100, role(registry.RoleFenced))},
			why:   []string{"s1 is fenced, not a secondary"},
		},
		{
			name:  "to: another epoch",
			want:  "s1",
			nodes: []registry.NodeRecord{self, secondary("s1", 100, epoch(6))},
			why:   []string{"s1 follows epoch 6, not the primary's 7"},
		},
		{
			name:  "to: cascading from another secondary",
			want:  "s2",
			nodes: []registry.NodeRecord{self, secondary("s1", 100), secondary("s2", 100, upstream("s1"))},
			why:   []string{"s2 replicates from s1, not directly from the primary p"},
		},
		{
			name:  "to: unknown node",
			want:  "nobody",
			nodes: []registry.NodeRecord{self, secondary("s1", 100)},
			why:   []string{"no live node named nobody"},
		},
		{
			name: "auto: no eligible node names each reason",
			nodes: []registry.NodeRecord{
				self,
				secondary("s1", 100, noFailover),
				secondary("s2", 100, epoch(6)),
				secondary("s3", 100, upstream("s1")),
				secondary("s4", 100, role(registry.RoleCandidate)),
			},
			why: []string{
				"no secondary can take over",
				"p is the primary already",
				"s1 is configured no_failover",
				"s2 follows epoch 6",
				"s3 replicates from s1",
				"s4 is candidate, not a secondary",
			},
		},
		{
			name:  "auto: the primary alone",
			nodes: []registry.NodeRecord{self},
			why:   []string{"no secondary can take over", "p is the primary already"},
		},
		{
			name:  "to: an eligible secondary, even not the best",
			want:  "s1",
			nodes: []registry.NodeRecord{self, secondary("s1", 90), secondary("s2", 100)},
			pick:  "s1",
		},
		{
			name:  "auto: the freshest",
			nodes: []registry.NodeRecord{self, secondary("s1", 90, priority(5)), secondary("s2", 100), secondary("s3", 95)},
			pick:  "s2",
		},
		{
			name:  "auto: ineligible nodes are skipped, however fresh",
			nodes: []registry.NodeRecord{self, secondary("s1", 200, noFailover), secondary("s2", 300, upstream("s3")), secondary("s3", 100)},
			pick:  "s3",
		},
		{
			name:  "auto: a sync member before a fresher non-member",
			nodes: []registry.NodeRecord{self, secondary("s1", 100), secondary("s2", 90)},
			sync:  registry.SyncRecord{Epoch: 7, Primary: "p", Members: []string{"s2"}},
			pick:  "s2",
		},
		{
			// Members of an older epoch's sync record acknowledged
			// another primary's commits, not this one's.
			name:  "auto: a sync record of another epoch is ignored",
			nodes: []registry.NodeRecord{self, secondary("s1", 100), secondary("s2", 90)},
			sync:  registry.SyncRecord{Epoch: 6, Primary: "p", Members: []string{"s2"}},
			pick:  "s1",
		},
		{
			name:  "auto: equally fresh, the higher priority",
			nodes: []registry.NodeRecord{self, secondary("s1", 100, priority(1)), secondary("s2", 100, priority(2))},
			pick:  "s2",
		},
		{
			name:  "auto: equally fresh and priority, the lowest name",
			nodes: []registry.NodeRecord{self, secondary("s2", 100), secondary("s1", 100)},
			pick:  "s1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := switchoverTarget(tc.want, primary, tc.nodes, tc.sync)
			if tc.pick != "" {
				if err != nil || got != tc.pick {
					t.Fatalf("got %q, %v; want %q", got, err, tc.pick)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %q; want a refusal", got)
			}
			if !errors.Is(err, errNotEligible) {
				t.Errorf("error %q does not wrap errNotEligible", err)
			}
			for _, w := range tc.why {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
