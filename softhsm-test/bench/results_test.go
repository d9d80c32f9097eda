package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// result is one line of the table and one element of results.json.
//
// value and baseline_value are medians over the repetitions; ratio is the
// median of the per-repetition ratios (each repetition measures the point
// and its ceiling back to back, so a burst of load from other jobs hits
// both), which is why it can differ slightly from value/baseline_value.
// target is the ratio issue #5 asks for and target_cmp how ratio must
// compare with it; both are null for informational lines.
type result struct {
	Name          string    `json:"name"`
	Value         float64   `json:"value"`
	Unit          string    `json:"unit"`
	BaselineName  *string   `json:"baseline_name"`
	BaselineValue *float64  `json:"baseline_value"`
	Ratio         *float64  `json:"ratio"`
	Target        *float64  `json:"target"`
	TargetCmp     *string   `json:"target_cmp"`
	Pass          *bool     `json:"pass"`
	Samples       []float64 `json:"samples"`
	RatioSamples  []float64 `json:"ratio_samples,omitempty"`
	Note          string    `json:"note,omitempty"`
}

// point collects the repetitions of one measurement.
type point struct {
	name, unit   string
	baseline     string
	target       float64
	cmp          string // ">=", "<=", ">" or "" (no target)
	note         string
	values, base []float64
	ratios       []float64
}

func (p *point) add(value, baseline, ratio float64) {
	p.values = append(p.values, value)
	p.base = append(p.base, baseline)
	p.ratios = append(p.ratios, ratio)
}

func (p *point) addValue(value float64) { p.values = append(p.values, value) }

func (p *point) result() result {
	r := result{Name: p.name, Value: round(median(p.values)), Unit: p.unit, Samples: roundAll(p.values), Note: p.note}
	if p.baseline != "" {
		b, q := round(median(p.base)), round(median(p.ratios))
		r.BaselineName, r.BaselineValue, r.Ratio, r.RatioSamples = &p.baseline, &b, &q, roundAll(p.ratios)
	}
	if p.cmp != "" && r.Ratio != nil {
		t, c := p.target, p.cmp
		var ok bool
		switch c {
		case ">=":
			ok = *r.Ratio >= t
		case "<=":
			ok = *r.Ratio <= t
		case ">":
			ok = *r.Ratio > t
		}
		r.Target, r.TargetCmp, r.Pass = &t, &c, &ok
	}
	return r
}

func round(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	switch a := math.Abs(x); {
	case a >= 100:
		return math.Round(x*10) / 10
	case a >= 1:
		return math.Round(x*1000) / 1000
	}
	return math.Round(x*1e5) / 1e5
}

func roundAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = round(x)
	}
	return out
}

func formatTable(rs []result, header string) string {
	var b strings.Builder
	b.WriteString(header)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "name\tvalue\tunit\tbaseline\tbaseline value\tratio\ttarget\t\t")
	for _, r := range rs {
		base, bval, ratio, target, verdict := "-", "-", "-", "-", "info"
		if r.BaselineName != nil {
			base, bval, ratio = *r.BaselineName, num(*r.BaselineValue), num(*r.Ratio)
		}
		if r.Target != nil {
			target = *r.TargetCmp + " " + num(*r.Target)
			verdict = "MISS"
			if *r.Pass {
				verdict = "PASS"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Name, num(r.Value), r.Unit, base, bval, ratio, target, verdict)
	}
	w.Flush()
	return b.String()
}

func num(x float64) string {
	switch a := math.Abs(x); {
	case a >= 100:
		return fmt.Sprintf("%.0f", x)
	case a >= 10:
		return fmt.Sprintf("%.1f", x)
	case a >= 1:
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprintf("%.3f", x)
}

// machineHeader says where and when the numbers were taken.
func machineHeader(start time.Time) string {
	load, _ := os.ReadFile("/proc/loadavg")
	rev, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	dirty := ""
	if out, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); len(out) > 0 {
		dirty = " (with uncommitted changes)"
	}
	return fmt.Sprintf("signerd benchmark suite, %s\n%d CPUs (GOMAXPROCS %d), %s %s/%s, commit %s%s\nload average at the end: %s\n",
		start.UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		strings.TrimSpace(string(rev)), dirty, strings.TrimSpace(string(load)))
}

// writeResults writes results.json (the list of results) and, beside it,
// results.txt (the table with the machine header).
func writeResults(path string, rs []result, table string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	txt := strings.TrimSuffix(path, filepath.Ext(path)) + ".txt"
	return os.WriteFile(txt, []byte(table), 0o644)
}

// checkResultsFile checks the shape of results.json: every measurement
// the suite promises is there, with finite numbers where it has a ceiling.
func checkResultsFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rs []map[string]any
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatalf("results.json is not a JSON list: %v", err)
	}
	byName := map[string]map[string]any{}
	for _, r := range rs {
		for _, k := range []string{"name", "value", "unit", "baseline_name", "baseline_value", "ratio", "target"} {
			if _, ok := r[k]; !ok {
				t.Errorf("result %v lacks %q", r["name"], k)
			}
		}
		name, _ := r["name"].(string)
		byName[name] = r
	}
	for _, name := range expectedResults {
		r, ok := byName[name]
		if !ok {
			t.Errorf("results.json lacks %s", name)
			continue
		}
		if v, ok := r["value"].(float64); !ok || math.IsNaN(v) {
			t.Errorf("%s: value %v", name, r["value"])
		}
		if r["baseline_name"] != nil {
			// A CPU difference over the floor may be negative (a short
			// smoke phase, 10 ms clock ticks); a ratio may not.
			if q, ok := r["ratio"].(float64); !ok || q < 0 && !strings.HasSuffix(name, "-over-floor") || math.IsNaN(q) || math.IsInf(q, 0) {
				t.Errorf("%s: ratio %v", name, r["ratio"])
			}
		}
	}
}
