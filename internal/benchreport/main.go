// Command benchreport reads `go test -bench` output on stdin and prints
// every benchmark as a ratio against the baseline measured in the same run.
// A baseline is the sub-benchmark whose name starts with "baseline=";
// its siblings (same parent) are reported as multiples of it, so the
// figures survive a noisy machine. Lines are passed through unchanged.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var line = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+([0-9.]+) ns/op`)

type result struct {
	parent, name string
	ns           float64
}

func main() {
	var results []result
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		text := sc.Text()
		fmt.Println(text)
		m := line.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		ns, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		full := m[1]
		parent, name := full, ""
		if i := strings.LastIndex(full, "/"); i >= 0 {
			parent, name = full[:i], full[i+1:]
		}
		results = append(results, result{parent, name, ns})
	}
	base := map[string]result{}
	for _, r := range results {
		if strings.HasPrefix(r.name, "baseline=") {
			base[r.parent] = r
		}
	}
	parents := make([]string, 0, len(base))
	for p := range base {
		parents = append(parents, p)
	}
	sort.Strings(parents)
	fmt.Println()
	fmt.Println("Ratios against the baseline measured in the same run (lower is faster):")
	for _, p := range parents {
		b := base[p]
		for _, r := range results {
			if r.parent != p || r == b {
				continue
			}
			fmt.Printf("  %-40s %-28s %8.2fx  (vs %s)\n", p, r.name, r.ns/b.ns, strings.TrimPrefix(b.name, "baseline="))
		}
	}
	if len(parents) == 0 {
		fmt.Println("  (no baselines found)")
	}
}
