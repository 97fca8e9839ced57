package chaos

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func w(p string, key int, prev, value string, start, end int64, outcome string) Op {
	return Op{Process: p, Kind: KindWrite, Key: key, Prev: prev, Value: value, Start: start, End: end, Outcome: outcome}
}

func r(p string, key int, value string, start, end int64) Op {
	return Op{Process: p, Kind: KindRead, Key: key, Value: value, Start: start, End: end, Outcome: OutcomeOK}
}

func conflict(op Op) Op { op.Outcome, op.Conflict = OutcomeFail, true; return op }

func finalsOf(vals map[int]string, nodes ...string) Finals {
	f := Finals{}
	for _, n := range nodes {
		f[n] = map[int]string{}
		for k, v := range vals {
			f[n][k] = v
		}
	}
	return f
}

func lin(t *testing.T, ops []Op, finals Finals) porcupine.CheckResult {
	t.Helper()
	res, _, _ := Linearizability(ops, finals, 10*time.Second)
	return res
}

func TestLinearizability(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ops    []Op
		finals map[int]string // nil: no end state
		want   porcupine.CheckResult
	}{
		{"sequential chain", []Op{
			w("w0", 0, "", "a", 0, 10, OutcomeOK),
			w("w1", 0, "a", "b", 20, 30, OutcomeOK),
			w("w0", 1, "", "c", 5, 15, OutcomeOK),
		}, map[int]string{0: "b", 1: "c"}, porcupine.Ok},
		{"concurrent writes order by prev", []Op{
			w("w1", 0, "a", "b", 0, 30, OutcomeOK),
			w("w0", 0, "", "a", 5, 10, OutcomeOK),
		}, map[int]string{0: "b"}, porcupine.Ok},
		{"lost update: two acknowledged writes from the same value", []Op{
			w("w0", 0, "", "a", 0, 10, OutcomeOK),
			w("w1", 0, "a", "b", 20, 30, OutcomeOK),
			w("w2", 0, "a", "c", 40, 50, OutcomeOK),
		}, nil, porcupine.Illegal},
		{"stale compare-and-set accepted after a newer acknowledgement", []Op{
			w("w0", 0, "", "a", 0, 10, OutcomeOK),
			w("w1", 0, "", "b", 20, 30, OutcomeOK),
		}, nil, porcupine.Illegal},
		{"acknowledged before the write it is based on started", []Op{
			w("w1", 0, "a", "b", 0, 10, OutcomeOK),
			w("w0", 0, "", "a", 20, 30, OutcomeOK),
		}, nil, porcupine.Illegal},
		{"unknown outcome, applied", []Op{
			w("w0", 0, "", "a", 0, 10, OutcomeUnknown),
			w("w1", 0, "a", "b", 20, 30, OutcomeOK),
		}, map[int]string{0: "b"}, porcupine.Ok},
		{"unknown outcome, not applied", []Op{
			w("w0", 0, "", "a", 0, 10, OutcomeUnknown),
			w("w1", 0, "", "b", 20, 30, OutcomeOK),
		}, map[int]string{0: "b"}, porcupine.Ok},
		{"unknown outcome, applied at the very end", []Op{
			w("w1", 0, "", "b", 20, 30, OutcomeOK),
			w("w0", 0, "b", "a", 0, 10, OutcomeUnknown),
		}, map[int]string{0: "a"}, porcupine.Ok},
		{"conflict is no constraint (only: not applied)", []Op{
			w("w0", 0, "", "a", 0, 10, OutcomeOK),
			conflict(w("w1", 0, "a", "b", 20, 30, OutcomeFail)),
		}, map[int]string{0: "a"}, porcupine.Ok},
		{"conflicted write present in the end state", []Op{
			w("w0", 0, "", "a", 0, 10, OutcomeOK),
			conflict(w("w1", 0, "a", "b", 20, 30, OutcomeFail)),
		}, map[int]string{0: "b"}, porcupine.Illegal},
		{"conflict with a stale serial", []Op{
			w("w0", 0, "", "a", 0, 10, OutcomeOK),
			conflict(w("w1", 0, "", "b", 20, 30, OutcomeFail)),
		}, map[int]string{0: "a"}, porcupine.Ok},
		{"certain failure is no constraint", []Op{
			w("w0", 0, "", "a", 0, 10, OutcomeOK),
			w("w1", 0, "a", "b", 20, 30, OutcomeFail),
		}, map[int]string{0: "a"}, porcupine.Ok},
		{"end state lost an acknowledged write", []Op{
			w("w0", 0, "", "a", 0, 10, OutcomeOK),
			w("w1", 0, "a", "b", 20, 30, OutcomeOK),
		}, map[int]string{0: "a"}, porcupine.Illegal},
		{"end state holds a write that certainly failed", []Op{
			w("w0", 0, "", "a", 0, 10, OutcomeOK),
			w("w1", 0, "a", "b", 20, 30, OutcomeFail),
		}, map[int]string{0: "b"}, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f Finals
			if tc.finals != nil {
				f = finalsOf(tc.finals, "zrs1", "zrs2")
			}
			if got := lin(t, tc.ops, f); got != tc.want {
				t.Fatalf("porcupine says %s, want %s", got, tc.want)
			}
		})
	}
}

func TestVisualizeIllegal(t *testing.T) {
	ops := []Op{
		w("w0", 0, "", "a", 0, 10, OutcomeOK),
		w("w1", 0, "", "b", 20, 30, OutcomeOK),
	}
	res, info, m := Linearizability(ops, nil, time.Second)
	if res != porcupine.Illegal {
		t.Fatalf("got %s", res)
	}
	path := filepath.Join(t.TempDir(), "v.html")
	if err := porcupine.VisualizePath(m, info, path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "cas k0") {
		t.Fatalf("visualization lacks the operations (%v)", err)
	}
}

func TestCheckFinal(t *testing.T) {
	ops := []Op{
		w("w0", 0, "", "a", 0, 10, OutcomeOK),
		w("w1", 0, "a", "b", 20, 30, OutcomeUnknown),
		w("w2", 0, "a", "x", 20, 30, OutcomeFail),
		w("w0", 1, "", "c", 0, 10, OutcomeOK),
	}
	for _, tc := range []struct {
		name  string
		f     Finals
		wants []string // substrings of the anomalies, in order
	}{
		{"ok, unknown applied", finalsOf(map[int]string{0: "b", 1: "c"}, "n1", "n2", "n3"), nil},
		{"ok, unknown not applied", finalsOf(map[int]string{0: "a", 1: "c"}, "n1", "n2"), nil},
		{"acknowledged write lost", finalsOf(map[int]string{0: "", 1: "c"}, "n1"), []string{"acknowledged write lost"}},
		{"failed write present", finalsOf(map[int]string{0: "x", 1: "c"}, "n1"), []string{"certainly failed"}},
		{"phantom value", finalsOf(map[int]string{0: "zzz", 1: "c"}, "n1"), []string{"never written"}},
		{"nodes disagree", Finals{"n1": {0: "a", 1: "c"}, "n2": {0: "b", 1: "c"}}, []string{"n1 holds \"a\", n2 holds \"b\""}},
		{"key missing", Finals{"n1": {0: "a"}}, []string{"key 1 was not read"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, an := CheckFinal(ops, tc.f, 2)
			if len(an) != len(tc.wants) {
				t.Fatalf("anomalies %v, want %d", an, len(tc.wants))
			}
			for i, s := range tc.wants {
				if !strings.Contains(an[i].Detail, s) {
					t.Errorf("anomaly %d = %v, want %q", i, an[i], s)
				}
			}
		})
	}
}

func TestCheckReads(t *testing.T) {
	base := []Op{
		w("w0", 0, "", "a", 0, 10, OutcomeOK),
		w("w1", 0, "a", "b", 20, 30, OutcomeOK),
		w("w1", 0, "b", "u", 40, 50, OutcomeUnknown), // discarded by a failover
		w("w2", 0, "b", "x", 40, 50, OutcomeFail),
		w("w0", 0, "b", "c", 60, 70, OutcomeOK),
	}
	finals := finalsOf(map[int]string{0: "c"}, "n1")
	for _, tc := range []struct {
		name  string
		reads []Op
		want  string // "" = no anomaly
	}{
		{"stale but monotonic", []Op{r("r0", 0, "", 1, 2), r("r0", 0, "a", 35, 36), r("r0", 0, "a", 80, 81), r("r0", 0, "c", 90, 91)}, ""},
		{"discarded unknown value seen, then the real chain", []Op{r("r0", 0, "u", 45, 46), r("r0", 0, "b", 47, 48)}, ""},
		{"going back", []Op{r("r0", 0, "b", 35, 36), r("r0", 0, "a", 80, 81)}, "went back in time"},
		{"other readers are independent", []Op{r("r0", 0, "b", 35, 36), r("r1", 0, "a", 80, 81)}, ""},
		{"read your writes", []Op{r("w0", 0, "b", 75, 76)}, "went back in time"},
		{"value of a failed commit", []Op{r("r0", 0, "x", 45, 46)}, "certainly failed"},
		{"never written", []Op{r("r0", 0, "zzz", 45, 46)}, "never written"},
		{"from the future", []Op{r("r0", 0, "c", 50, 55)}, "before it was written"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := append(append([]Op(nil), base...), tc.reads...)
			chains, an := CheckFinal(ops, finals, 1)
			if len(an) > 0 {
				t.Fatalf("final: %v", an)
			}
			an = CheckReads(ops, chains)
			switch {
			case tc.want == "" && len(an) > 0:
				t.Fatalf("unexpected anomalies %v", an)
			case tc.want != "" && (len(an) != 1 || !strings.Contains(an[0].Detail, tc.want)):
				t.Fatalf("anomalies %v, want one with %q", an, tc.want)
			}
		})
	}
}

func TestPromotions(t *testing.T) {
	logs := `Attaching to zrschaos_zrs1_1, zrschaos_zrs2_1
zrs1_1  | 2026-11-22T08:00:00.000Z [INFO]  zrs.cluster: promoted: serving commits as primary: epoch=1 last_tid=0000000000000000
zrs2_1  | 2026-11-22T08:00:01.000Z [INFO]  zrs.cluster: following: upstream=zrs1 address=zrs1:5000 epoch=1
zrs2-1  | 2026-11-22T08:00:09.000Z [INFO]  zrs.cluster: promoted: serving commits as primary: epoch=2 last_tid=03ff
zrs1_1  | 2026-11-22T08:00:20.000Z [INFO]  zrs.cluster: promoted: serving commits as primary: epoch=2 last_tid=03ff
zrs3_1  | 2026-11-22T08:00:30.000Z [INFO]  zrs.cluster: promoted: serving commits as primary: epoch=3 last_tid=0400
zrs3_1  | 2026-11-22T08:00:31.000Z [INFO]  zrs.cluster: promoted: serving commits as primary: epoch=3 last_tid=0400
`
	p, err := Promotions(strings.NewReader(logs))
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 3 || len(p[1]) != 1 || p[1][0] != "zrs1" || len(p[2]) != 2 || len(p[3]) != 1 {
		t.Fatalf("promotions %v", p)
	}
	an := CheckEpochs(p)
	if len(an) != 1 || !strings.Contains(an[0].Detail, "epoch 2: 2 nodes promoted: zrs2, zrs1") {
		t.Fatalf("anomalies %v", an)
	}
}

func TestMeasure(t *testing.T) {
	ms := int64(time.Millisecond)
	ack := func(end int64, epoch uint64) Op {
		return Op{Kind: KindWrite, Outcome: OutcomeOK, End: end * ms, Epoch: epoch}
	}
	ops := []Op{ack(100, 1), ack(200, 1), ack(5300, 2), ack(5400, 2), ack(9000, 2), ack(9100, 2),
		{Kind: KindWrite, Outcome: OutcomeFail, End: 3000 * ms, Epoch: 2}}
	faults := []Fault{
		{Kind: "kill-primary", Start: 250 * ms, Healed: 1000 * ms, Recovered: 6000 * ms, EpochBefore: 1, EpochAfter: 2},
		{Kind: "zk-leader", Start: 8000 * ms, Healed: 8500 * ms, Recovered: 9050 * ms, EpochBefore: 2, EpochAfter: 2},
	}
	Measure(ops, faults)
	if faults[0].Failover != 5050*time.Millisecond || faults[0].Unavailable != 5100*time.Millisecond {
		t.Errorf("fault 0: failover %v unavailable %v", faults[0].Failover, faults[0].Unavailable)
	}
	if faults[1].Failover != 0 || faults[1].Unavailable != 3600*time.Millisecond {
		t.Errorf("fault 1: failover %v unavailable %v", faults[1].Failover, faults[1].Unavailable)
	}
	s := StatsOf([]time.Duration{3, 1, 2, 10})
	if s.Min != 1 || s.Max != 10 || s.Median != 2 || s.N != 4 {
		t.Errorf("stats %+v", s)
	}
}

func TestRecorderRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	rec, err := NewRecorder(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Op{w("w0", 3, "", "w0-0", 1, 2, OutcomeOK), r("r0", 3, "w0-0", 3, 4)}
	for _, op := range want {
		rec.Record(op)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn last line (killed mid-write) is ignored.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"process":"w1","ki`)
	f.Close()
	got, err := ReadHistoryFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("read back %v", got)
	}
	if _, err := ReadHistory(strings.NewReader("{}\nnot json\n{}\n")); err == nil {
		t.Fatal("a bad line in the middle was accepted")
	}
}

func TestSchedule(t *testing.T) {
	a := Schedule(rand.New(rand.NewSource(5)), AllFaults, 20)
	b := Schedule(rand.New(rand.NewSource(5)), AllFaults, 20)
	if len(a) != 20 || strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("not reproducible: %v / %v", a, b)
	}
	seen := map[string]int{}
	for _, k := range a[:len(AllFaults)] {
		seen[k]++
	}
	if len(seen) != len(AllFaults) {
		t.Fatalf("the first %d rounds do not cover every kind: %v", len(AllFaults), a)
	}
}
