package chaos

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Anomaly is a broken promise found in a history, the end state or the
// logs.
type Anomaly struct {
	Check  string `json:"check"` // "linearizability", "reads", "final-state", "epochs", "identical"
	Detail string `json:"detail"`
}

func (a Anomaly) String() string { return a.Check + ": " + a.Detail }

// Finals is the end state read from each node: node name -> key -> value
// ("" = no object).
type Finals map[string]map[int]string

// --- porcupine ----------------------------------------------------------------

// casInput is a porcupine operation's input: a compare-and-set of Key from
// Prev to Value, or (Read) a read of Key.
type casInput struct {
	Key   int
	Read  bool
	Prev  string
	Value string
}

// casOutput is its output: the outcome of a write (OutcomeOK,
// OutcomeUnknown) or the value a read returned.
type casOutput struct {
	Outcome string
	Value   string
}

// Model is the porcupine model of one key: a register holding a string
// ("" = no object) changed by compare-and-set. It is nondeterministic so
// that a write whose outcome is unknown may or may not take effect.
func Model() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[int][]porcupine.Operation{}
			var keys []int
			for _, op := range history {
				k := op.Input.(casInput).Key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			sort.Ints(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() []any { return []any{""} },
		Step: func(state, input, output any) []any {
			s, in, out := state.(string), input.(casInput), output.(casOutput)
			if in.Read {
				if s == out.Value {
					return []any{s}
				}
				return nil
			}
			switch out.Outcome {
			case OutcomeOK:
				if s == in.Prev {
					return []any{in.Value}
				}
				return nil
			default: // unknown: maybe applied
				if s == in.Prev {
					return []any{in.Value, s}
				}
				return []any{s}
			}
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(casInput), output.(casOutput)
			if in.Read {
				return fmt.Sprintf("read k%d -> %q", in.Key, out.Value)
			}
			return fmt.Sprintf("cas k%d %q->%q: %s", in.Key, in.Prev, in.Value, out.Outcome)
		},
		DescribeState: func(state any) string { return strconv.Quote(state.(string)) },
	}
	return nm.ToModel()
}

// Operations turns a history into porcupine operations: writes that were
// acknowledged, or of unknown outcome (ending at +infinity: after every
// recorded operation), and, when finals is not nil, one read per node and
// key after everything else. Reads of the history (possibly stale) and
// writes that failed are left out: a failure, conflicts included, only
// promises that nothing was committed (a primary may check a serial
// against a transaction it wrote but that a failover then discarded, so
// a conflict says nothing certain about the key's value). It also
// returns the process names by ClientId.
func Operations(ops []Op, finals Finals) ([]porcupine.Operation, []string) {
	var last int64
	for _, op := range ops {
		last = max(last, op.End, op.Start)
	}
	inf := last + 1
	ids := map[string]int{}
	var names []string
	id := func(p string) int {
		if i, ok := ids[p]; ok {
			return i
		}
		ids[p] = len(names)
		names = append(names, p)
		return ids[p]
	}
	var out []porcupine.Operation
	for _, op := range ops {
		if op.Kind != KindWrite {
			continue
		}
		in := casInput{Key: op.Key, Prev: op.Prev, Value: op.Value}
		switch {
		case op.Outcome == OutcomeOK:
			out = append(out, porcupine.Operation{ClientId: id(op.Process), Input: in, Call: op.Start,
				Output: casOutput{Outcome: OutcomeOK}, Return: op.End})
		case op.Outcome == OutcomeUnknown:
			out = append(out, porcupine.Operation{ClientId: id(op.Process), Input: in, Call: op.Start,
				Output: casOutput{Outcome: OutcomeUnknown}, Return: inf})
		}
	}
	nodes := make([]string, 0, len(finals))
	for n := range finals {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		cid := id("final:" + n)
		keys := make([]int, 0, len(finals[n]))
		for k := range finals[n] {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		for _, k := range keys {
			out = append(out, porcupine.Operation{ClientId: cid, Input: casInput{Key: k, Read: true},
				Call: inf + 1, Output: casOutput{Value: finals[n][k]}, Return: inf + 2})
		}
	}
	return out, names
}

// Linearizability checks the writes (and the end state, if finals is not
// nil) with porcupine. A result of porcupine.Unknown means the check
// timed out.
func Linearizability(ops []Op, finals Finals, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo, porcupine.Model) {
	m := Model()
	pops, _ := Operations(ops, finals)
	res, info := porcupine.CheckOperationsVerbose(m, pops, timeout)
	return res, info, m
}

// --- version chains -------------------------------------------------------------

// index is what the independent checks know about each key's writes.
type index struct {
	// byValue: the write of each value (values are unique).
	byValue map[int]map[string]*Op
}

func newIndex(ops []Op) (*index, []Anomaly) {
	ix := &index{byValue: map[int]map[string]*Op{}}
	var an []Anomaly
	for i := range ops {
		op := &ops[i]
		if op.Kind != KindWrite {
			continue
		}
		m := ix.byValue[op.Key]
		if m == nil {
			m = map[string]*Op{}
			ix.byValue[op.Key] = m
		}
		if prev, dup := m[op.Value]; dup {
			an = append(an, Anomaly{"history", fmt.Sprintf("value %q written twice: %v and %v", op.Value, prev, op)})
			continue
		}
		if op.Value == "" {
			an = append(an, Anomaly{"history", fmt.Sprintf("empty value written: %v", op)})
			continue
		}
		m[op.Value] = op
	}
	return ix, an
}

// chain returns the versions of key that lead to value v, oldest first
// (starting with ""), walking each write's Prev back. It fails when a
// value on the way was never written, or only by a write that certainly
// failed.
func (ix *index) chain(key int, v string) ([]string, error) {
	var rev []string
	seen := map[string]bool{}
	for v != "" {
		if seen[v] {
			return nil, fmt.Errorf("cycle at %q", v)
		}
		seen[v] = true
		w := ix.byValue[key][v]
		switch {
		case w == nil:
			return nil, fmt.Errorf("value %q was never written", v)
		case w.Outcome == OutcomeFail:
			return nil, fmt.Errorf("value %q was written by a commit that certainly failed (%v: %s)", v, w, w.Error)
		}
		rev = append(rev, v)
		v = w.Prev
	}
	rev = append(rev, "")
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev, nil
}

// CheckFinal checks the end state read from every node: the nodes agree
// on every key; each final value is reachable from "" through writes that
// were acknowledged or may have been; and every acknowledged write of the
// key is on that chain (present, or superseded by later writes). It also
// returns each key's version chain (from the first node), for CheckReads.
func CheckFinal(ops []Op, finals Finals, keys int) (map[int][]string, []Anomaly) {
	ix, an := newIndex(ops)
	nodes := make([]string, 0, len(finals))
	for n := range finals {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	chains := map[int][]string{}
	acked := map[int][]*Op{}
	for i := range ops {
		if ops[i].Kind == KindWrite && ops[i].Outcome == OutcomeOK {
			acked[ops[i].Key] = append(acked[ops[i].Key], &ops[i])
		}
	}
	for k := 0; k < keys; k++ {
		for ni, n := range nodes {
			v, ok := finals[n][k]
			if !ok {
				an = append(an, Anomaly{"final-state", fmt.Sprintf("%s: key %d was not read", n, k)})
				continue
			}
			if ni > 0 {
				if v0 := finals[nodes[0]][k]; v != v0 {
					an = append(an, Anomaly{"final-state", fmt.Sprintf("key %d: %s holds %q, %s holds %q", k, nodes[0], v0, n, v)})
				}
			}
			c, err := ix.chain(k, v)
			if err != nil {
				an = append(an, Anomaly{"final-state", fmt.Sprintf("%s: key %d = %q: %v", n, k, v, err)})
				continue
			}
			on := make(map[string]bool, len(c))
			for _, x := range c {
				on[x] = true
			}
			for _, w := range acked[k] {
				if !on[w.Value] {
					an = append(an, Anomaly{"final-state", fmt.Sprintf("%s: acknowledged write lost: %v (key %d ends at %q)", n, w, k, v)})
				}
			}
			if ni == 0 {
				chains[k] = c
			}
		}
	}
	return chains, an
}

// CheckReads checks every successful read against the writes: it returns
// "" or a value written by a write that was acknowledged or may have
// been, which began before the read ended; and per process and key the
// position of the values on the key's final version chain never goes
// back, counting the process's own acknowledged writes (monotonic reads,
// read-your-writes). Values not on the final chain (a write of unknown
// outcome that a failover discarded, seen on a secondary before) are not
// placed.
func CheckReads(ops []Op, chains map[int][]string) []Anomaly {
	ix, _ := newIndex(ops)
	pos := map[int]map[string]int{}
	for k, c := range chains {
		m := make(map[string]int, len(c))
		for i, v := range c {
			m[v] = i
		}
		pos[k] = m
	}
	type pk struct {
		p string
		k int
	}
	// Events in the order each process saw them: a read at its end, a
	// write's acknowledgement at its end (per process, operations do not
	// overlap).
	sorted := make([]*Op, 0, len(ops))
	for i := range ops {
		sorted = append(sorted, &ops[i])
	}
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].End < sorted[j].End })
	high := map[pk]int{}
	highOp := map[pk]*Op{}
	var an []Anomaly
	for _, op := range sorted {
		if op.Outcome != OutcomeOK {
			continue
		}
		if op.Kind == KindRead && op.Value != "" {
			w := ix.byValue[op.Key][op.Value]
			switch {
			case w == nil:
				an = append(an, Anomaly{"reads", fmt.Sprintf("read a value never written: %v", op)})
				continue
			case w.Outcome == OutcomeFail:
				an = append(an, Anomaly{"reads", fmt.Sprintf("read a value whose commit certainly failed: %v (write %v: %s)", op, w, w.Error)})
				continue
			case w.Start > op.End:
				an = append(an, Anomaly{"reads", fmt.Sprintf("read a value before it was written: %v (write %v)", op, w)})
				continue
			}
		}
		p, ok := pos[op.Key][op.Value]
		if !ok {
			continue
		}
		key := pk{op.Process, op.Key}
		if h, seen := high[key]; seen && p < h {
			an = append(an, Anomaly{"reads", fmt.Sprintf("went back in time: %v (version %d) after %v (version %d)", op, p, highOp[key], h)})
			continue
		}
		if _, seen := high[key]; !seen || p > high[key] {
			high[key], highOp[key] = p, op
		}
	}
	return an
}

// --- epochs -----------------------------------------------------------------------

var (
	promotedRE = regexp.MustCompile(`promoted: serving commits as primary.*\bepoch=(\d+)`)
	// docker compose (v1 and v2) prefixes each line with the container's
	// service name and a number: "zrs2_1  | " or "zrs2-1  | ".
	composePrefixRE = regexp.MustCompile(`^\s*([A-Za-z0-9.]+?)[-_]\d+\s+\|`)
)

// Promotions parses node logs (as `docker compose logs` prints them) and
// returns, per epoch, the nodes that logged a promotion in it.
func Promotions(r io.Reader) (map[uint64][]string, error) {
	out := map[uint64][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		line := sc.Text()
		m := promotedRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		epoch, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			continue
		}
		node := "?"
		if p := composePrefixRE.FindStringSubmatch(line); p != nil {
			node = p[1]
		}
		if !contains(out[epoch], node) {
			out[epoch] = append(out[epoch], node)
		}
	}
	return out, sc.Err()
}

// CheckEpochs reports every epoch in which more than one node was
// promoted (accepted commits).
func CheckEpochs(promotions map[uint64][]string) []Anomaly {
	var an []Anomaly
	epochs := make([]uint64, 0, len(promotions))
	for e := range promotions {
		epochs = append(epochs, e)
	}
	sort.Slice(epochs, func(i, j int) bool { return epochs[i] < epochs[j] })
	for _, e := range epochs {
		if len(promotions[e]) > 1 {
			an = append(an, Anomaly{"epochs", fmt.Sprintf("epoch %d: %d nodes promoted: %s", e, len(promotions[e]), strings.Join(promotions[e], ", "))})
		}
	}
	return an
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
