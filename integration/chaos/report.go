package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// Fault is one injected fault and its recovery, as the driver saw it.
type Fault struct {
	Round  int    `json:"round"`
	Kind   string `json:"kind"`
	Target string `json:"target"` // the container(s) it hit
	Detail string `json:"detail,omitempty"`
	// Start: the fault was injected; Healed: the recovery action
	// (restart, unpause, heal) was done; Recovered: the cluster had one
	// primary and caught-up secondaries again (0: it never did).
	Start     int64 `json:"start_ns"`
	Healed    int64 `json:"healed_ns"`
	Recovered int64 `json:"recovered_ns"`
	// Primary and EpochBefore: the primary and epoch when the fault
	// started; PrimaryAfter and EpochAfter once recovered.
	Primary      string `json:"primary"`
	EpochBefore  uint64 `json:"epoch_before"`
	PrimaryAfter string `json:"primary_after"`
	EpochAfter   uint64 `json:"epoch_after"`

	// Measured from the history (Measure):
	// Failover is the time from Start to the first write acknowledged in
	// a later epoch (0 when there was no new epoch).
	Failover time.Duration `json:"failover_ns"`
	// Unavailable is the longest gap between consecutive acknowledged
	// writes that overlaps [Start, Recovered].
	Unavailable time.Duration `json:"unavailable_ns"`
}

// Measure fills in each fault's Failover and Unavailable from the history.
func Measure(ops []Op, faults []Fault) {
	var acks []*Op
	for i := range ops {
		if ops[i].Kind == KindWrite && ops[i].Outcome == OutcomeOK {
			acks = append(acks, &ops[i])
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i].End < acks[j].End })
	for fi := range faults {
		f := &faults[fi]
		f.Failover, f.Unavailable = 0, 0
		end := f.Recovered
		if end == 0 {
			end = f.Healed
		}
		if f.EpochAfter > f.EpochBefore {
			for _, a := range acks {
				if a.End > f.Start && a.Epoch > f.EpochBefore {
					f.Failover = time.Duration(a.End - f.Start)
					break
				}
			}
		}
		// The last acknowledgement before the fault, then every gap up
		// to the first acknowledgement after the recovery.
		i := sort.Search(len(acks), func(i int) bool { return acks[i].End > f.Start })
		prev := f.Start
		if i > 0 {
			prev = acks[i-1].End
		}
		var gap int64
		for ; i < len(acks); i++ {
			gap = max(gap, acks[i].End-prev)
			prev = acks[i].End
			if acks[i].End >= end {
				break
			}
		}
		if i == len(acks) {
			gap = max(gap, end-prev) // no acknowledgement after it at all
		}
		f.Unavailable = time.Duration(gap)
	}
}

// Stats are min/median/max of durations.
type Stats struct {
	N      int           `json:"n"`
	Min    time.Duration `json:"min_ns"`
	Median time.Duration `json:"median_ns"`
	Max    time.Duration `json:"max_ns"`
}

func (s Stats) String() string {
	if s.N == 0 {
		return "n=0"
	}
	return fmt.Sprintf("n=%d min %v median %v max %v", s.N, s.Min.Round(time.Millisecond),
		s.Median.Round(time.Millisecond), s.Max.Round(time.Millisecond))
}

// StatsOf returns the statistics of ds.
func StatsOf(ds []time.Duration) Stats {
	if len(ds) == 0 {
		return Stats{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stats{N: len(s), Min: s[0], Median: med, Max: s[len(s)-1]}
}

// Report is the outcome of a chaos run.
type Report struct {
	Seed         int64               `json:"seed"`
	Rounds       int                 `json:"rounds"`
	Start        time.Time           `json:"start"`
	End          time.Time           `json:"end"`
	FaultsBy     map[string]int      `json:"faults_by_kind"`
	Faults       []Fault             `json:"faults"`
	Failover     Stats               `json:"failover"`
	Unavailable  Stats               `json:"unavailable"`
	Operations   map[string]int      `json:"operations"`   // "write/ok", ...
	Linearizable string              `json:"linearizable"` // porcupine: Ok, Illegal, Unknown
	Promotions   map[uint64][]string `json:"promotions"`
	DataFiles    map[string]string   `json:"data_files"` // node -> sha256 (and verify result)
	Anomalies    []Anomaly           `json:"anomalies"`
	Problems     []string            `json:"problems,omitempty"` // the run itself went wrong (not anomalies of the cluster)
}

// Summarize fills in FaultsBy, Failover, Unavailable and Operations.
func (r *Report) Summarize(ops []Op) {
	Measure(ops, r.Faults)
	r.FaultsBy = map[string]int{}
	var fo, un []time.Duration
	for _, f := range r.Faults {
		r.FaultsBy[f.Kind]++
		if f.Failover > 0 {
			fo = append(fo, f.Failover)
		}
		un = append(un, f.Unavailable)
	}
	r.Failover, r.Unavailable = StatsOf(fo), StatsOf(un)
	r.Operations = map[string]int{}
	for _, op := range ops {
		k := op.Kind + "/" + op.Outcome
		if op.Conflict {
			k += "/conflict"
		}
		r.Operations[k]++
	}
}

// WriteText writes the human-readable report.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "zrs chaos run: seed %d, %d rounds, %s .. %s (%v)\n", r.Seed, r.Rounds,
		r.Start.UTC().Format(time.RFC3339), r.End.UTC().Format(time.RFC3339), r.End.Sub(r.Start).Round(time.Second))
	fmt.Fprintf(&b, "\nfaults by kind:\n")
	for _, k := range slices.Sorted(maps.Keys(r.FaultsBy)) {
		fmt.Fprintf(&b, "  %-28s %d\n", k, r.FaultsBy[k])
	}
	fmt.Fprintf(&b, "\nfailover (fault -> first commit acknowledged in a new epoch): %s\n", r.Failover)
	fmt.Fprintf(&b, "write unavailability (longest gap between acknowledged writes): %s\n", r.Unavailable)
	fmt.Fprintf(&b, "\nper fault:\n")
	for _, f := range r.Faults {
		fo := "-"
		if f.Failover > 0 {
			fo = f.Failover.Round(time.Millisecond).String()
		}
		rec := "never"
		if f.Recovered > 0 {
			rec = time.Duration(f.Recovered - f.Start).Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "  %2d %-28s %-16s primary %s@%d -> %s@%d  failover %-8s unavailable %-8s recovered after %s\n",
			f.Round, f.Kind, f.Target, f.Primary, f.EpochBefore, f.PrimaryAfter, f.EpochAfter, fo,
			f.Unavailable.Round(time.Millisecond), rec)
		if f.Detail != "" {
			fmt.Fprintf(&b, "     %s\n", f.Detail)
		}
	}
	fmt.Fprintf(&b, "\noperations:\n")
	for _, k := range slices.Sorted(maps.Keys(r.Operations)) {
		fmt.Fprintf(&b, "  %-24s %d\n", k, r.Operations[k])
	}
	fmt.Fprintf(&b, "\nlinearizability (porcupine, writes and end state): %s\n", r.Linearizable)
	fmt.Fprintf(&b, "promotions by epoch:")
	for _, e := range slices.Sorted(maps.Keys(r.Promotions)) {
		fmt.Fprintf(&b, " %d:%s", e, strings.Join(r.Promotions[e], "+"))
	}
	fmt.Fprintf(&b, "\ndata files:\n")
	for _, n := range slices.Sorted(maps.Keys(r.DataFiles)) {
		fmt.Fprintf(&b, "  %s %s\n", n, r.DataFiles[n])
	}
	fmt.Fprintf(&b, "\nanomalies: %d\n", len(r.Anomalies))
	for i, a := range r.Anomalies {
		if i == 50 {
			fmt.Fprintf(&b, "  ... %d more in report.json\n", len(r.Anomalies)-i)
			break
		}
		fmt.Fprintf(&b, "  %s\n", a)
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(&b, "\nproblems with the run:\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  %s\n", p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Save writes report.txt and report.json into dir.
func (r *Report) Save(dir string) error {
	f, err := os.Create(dir + "/report.txt")
	if err != nil {
		return err
	}
	if err := r.WriteText(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(dir+"/report.json", append(j, '\n'), 0o644)
}
