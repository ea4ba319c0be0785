// Command mutate runs the planted bugs of testdata/mutants against the
// tests that must catch them (make mutate; docs/RELIABILITY.md).
//
// Each planted bug is a patch, testdata/mutants/<pkg>/<name>.patch: a
// unified diff against the repository, after a header of comment lines
// that git apply skips:
//
//	# promise: Accept admits a turn only while running, in one step
//	# tests: ./fsm -run '^TestProperty'
//	# env: RAPID_CHECKS=300
//	diff --git a/fsm/accept.go b/fsm/accept.go
//	...
//
// mutate copies the working tree (the files git ls-files lists, tracked or
// new and not ignored) to a temporary directory and first runs every test
// command named by the selected patches there without any patch: this
// control run must pass. Then, one patch at a time, it applies the patch
// with git apply, builds the packages it touches, runs each "# tests:"
// line as "go test -count=1 -timeout T <line>" and restores the files.
// Each mutant is then
//
//	CAUGHT    a test failed by an assertion ("--- FAIL", no timeout panic)
//	HANG      the tests timed out (not a catch: a bug must fail by assertion)
//	SURVIVED  the tests passed
//	CRASH     the test binary died without a failed test (not a catch)
//	BROKEN    the patch does not apply or the tree does not build with it
//
// It prints one line per mutant and a summary, and exits 1 unless every
// selected mutant is CAUGHT (2 when the control run fails or on a usage
// error). Arguments filter the mutants: a name ("fsm/split-gate"), a
// package ("notify") or a pattern ("marker/read-*"); the MUTANTS variable
// of make mutate is passed as arguments.
//
// Usage:
//
//	go run ./internal/mutate [-timeout 120s] [-v] [-markdown] [-dir DIR] [filter ...]
//
// -dir reads the patches from DIR (laid out as <pkg>/<name>.patch, like
// testdata/mutants) instead: a set kept outside the repository, such as a
// fresh independent set that measures the tests' catch rate.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is the command line.
type config struct {
	timeout  time.Duration // go test -timeout for each test command
	verbose  bool          // print the output of every mutant that is not CAUGHT
	markdown bool          // print the result table in Markdown too
	keep     bool          // keep the temporary tree
	dir      string        // where the patches are; "" is root/MutantsDir
	filters  []string
}

func run(args []string, stdout, stderr io.Writer) int {
	var cfg config
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&cfg.timeout, "timeout", 120*time.Second, "go test -timeout for each test command of a mutant")
	fs.BoolVar(&cfg.verbose, "v", false, "print the test output of every mutant that is not CAUGHT")
	fs.BoolVar(&cfg.markdown, "markdown", false, "also print the results as a Markdown table")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary copy of the tree")
	fs.StringVar(&cfg.dir, "dir", "", "read the patches from this directory instead of "+MutantsDir)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, a := range fs.Args() {
		cfg.filters = append(cfg.filters, strings.FieldsFunc(a, func(r rune) bool { return r == ',' || r == ' ' })...)
	}
	code, err := mutate(context.Background(), cfg, stdout)
	if err != nil {
		fmt.Fprintln(stderr, err)
	}
	return code
}

// verdict is the outcome of one mutant.
type verdict string

// The verdicts; only Caught counts as a catch.
const (
	Caught   verdict = "CAUGHT"
	Hang     verdict = "HANG"
	Survived verdict = "SURVIVED"
	Crash    verdict = "CRASH"
	Broken   verdict = "BROKEN"
)

// result is one mutant's verdict and the evidence for it.
type result struct {
	m       *mutant
	verdict verdict
	failed  []string // top-level tests that failed (CAUGHT)
	elapsed time.Duration
	output  string // the output that decided the verdict
}

func mutate(ctx context.Context, cfg config, out io.Writer) (int, error) {
	root, err := repoRoot(ctx)
	if err != nil {
		return 2, err
	}
	dir := cfg.dir
	if dir == "" {
		dir = filepath.Join(root, MutantsDir)
	}
	all, err := loadMutants(dir)
	if err != nil {
		return 2, err
	}
	ms, err := selectMutants(all, cfg.filters)
	if err != nil {
		return 2, err
	}
	if len(ms) == 0 {
		return 2, fmt.Errorf("mutate: no mutants under %s", dir)
	}
	tmp, err := os.MkdirTemp("", "quiesce-mutate-")
	if err != nil {
		return 2, fmt.Errorf("mutate: %w", err)
	}
	if cfg.keep {
		fmt.Fprintf(out, "tree: %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	tree := filepath.Join(tmp, "tree")
	if err := copyTree(ctx, root, tree); err != nil {
		return 2, err
	}

	// Control: every distinct test command passes on the unpatched tree.
	seen := map[string]bool{}
	for _, m := range ms {
		for _, args := range m.tests {
			key := strings.Join(m.env, " ") + "\x00" + strings.Join(args, "\x00")
			if seen[key] {
				continue
			}
			seen[key] = true
			start := time.Now()
			res := goTest(ctx, tree, cfg.timeout, m.env, args)
			if res.err != nil {
				fmt.Fprintf(out, "control FAILED  go test %s (%s)\n%s\n", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), res.output)
				return 2, errors.New("mutate: the control run (no patch) fails: fix the tests first")
			}
			fmt.Fprintf(out, "control ok      go test %s (%s)\n", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
		}
	}

	var results []result
	caught := 0
	for _, m := range ms {
		r := runMutant(ctx, cfg, tree, m)
		results = append(results, r)
		if r.verdict == Caught {
			caught++
		}
		detail := strings.Join(r.failed, ", ")
		if r.verdict != Caught {
			detail = r.m.promise
		}
		fmt.Fprintf(out, "%-9s %-40s %7s  %s\n", r.verdict, m.name, r.elapsed.Round(100*time.Millisecond), detail)
		if r.verdict == Broken || r.verdict == Crash || (cfg.verbose && r.verdict != Caught) {
			fmt.Fprintf(out, "%s\n", indent(tail(r.output, 60)))
		}
	}
	fmt.Fprintf(out, "\nmutants caught: %d/%d", caught, len(results))
	for _, v := range []verdict{Hang, Survived, Crash, Broken} {
		if n := count(results, v); n > 0 {
			fmt.Fprintf(out, ", %s %d", strings.ToLower(string(v)), n)
		}
	}
	fmt.Fprintln(out)
	if cfg.markdown {
		printMarkdown(out, results)
	}
	if caught != len(results) {
		return 1, nil
	}
	return 0, nil
}

// runMutant applies m to tree, builds, runs its tests and restores tree.
func runMutant(ctx context.Context, cfg config, tree string, m *mutant) (r result) {
	start := time.Now()
	r.m = m
	defer func() { r.elapsed = time.Since(start) }()

	restore, err := snapshot(tree, m.touches)
	if err != nil {
		r.verdict, r.output = Broken, err.Error()
		return r
	}
	defer func() {
		if err := restore(); err != nil {
			// The next mutant would run on a patched tree: stop here.
			panic(fmt.Sprintf("mutate: restore %s after %s: %v", tree, m.name, err))
		}
	}()
	if outp, err := gitApply(ctx, tree, m.file, false); err != nil {
		r.verdict, r.output = Broken, "git apply: "+outp
		return r
	}
	if outp, err := goBuild(ctx, tree, m.touches); err != nil {
		r.verdict, r.output = Broken, "go build: "+outp
		return r
	}
	r.verdict = Survived
	for _, args := range m.tests {
		res := goTest(ctx, tree, cfg.timeout, m.env, args)
		v, failed := classify(res)
		switch {
		case v == Caught:
			r.verdict, r.failed, r.output = Caught, failed, res.output
			return r
		case v == Broken:
			r.verdict, r.output = Broken, res.output
			return r
		case v == Hang || (v == Crash && r.verdict != Hang):
			r.verdict, r.output = v, res.output
		case r.verdict == Survived:
			r.output = res.output
		}
	}
	return r
}

// testRun is the result of one go test command.
type testRun struct {
	output   string
	err      error // nil when go test exited 0
	timedOut bool  // killed by our own deadline past go test's -timeout
}

// goTest runs "go test -count=1 -timeout T args..." in dir. A test binary
// that ignores its -timeout is killed a minute later.
func goTest(ctx context.Context, dir string, timeout time.Duration, env, args []string) testRun {
	ctx, cancel := context.WithTimeout(ctx, timeout+time.Minute)
	defer cancel()
	full := append([]string{"test", "-count=1", "-timeout", timeout.String()}, args...)
	cmd := exec.CommandContext(ctx, goTool(), full...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "RAPID_NOFAILFILE=1"), env...)
	cmd.WaitDelay = 10 * time.Second
	b, err := cmd.CombinedOutput()
	return testRun{output: string(b), err: err, timedOut: ctx.Err() != nil}
}

// failLine matches a failed top-level test in go test output.
var failLine = regexp.MustCompile(`(?m)^--- FAIL: (\S+)`)

// classify judges one test run of a mutant.
func classify(r testRun) (verdict, []string) {
	out := r.output
	switch {
	case r.err == nil:
		return Survived, nil
	case strings.Contains(out, "[build failed]") || strings.Contains(out, "[setup failed]"):
		return Broken, nil
	case r.timedOut || strings.Contains(out, "panic: test timed out"):
		return Hang, nil
	}
	var failed []string
	for _, sm := range failLine.FindAllStringSubmatch(out, -1) {
		if !contains(failed, sm[1]) {
			failed = append(failed, sm[1])
		}
	}
	if len(failed) == 0 {
		return Crash, nil
	}
	return Caught, failed
}

// repoRoot returns the top of the git work tree around the current
// directory.
func repoRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("mutate: not in a git work tree: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// copyTree copies the files of root that git ls-files lists (tracked, or
// new and not ignored; deleted ones skipped) to dst.
func copyTree(ctx context.Context, root, dst string) error {
	cmd := exec.CommandContext(ctx, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("mutate: git ls-files: %w", err)
	}
	for _, rel := range strings.Split(string(b), "\x00") {
		if rel == "" {
			continue
		}
		src := filepath.Join(root, rel)
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			return fmt.Errorf("mutate: copy: %w", err)
		}
		to := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return fmt.Errorf("mutate: copy: %w", err)
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err == nil {
				err = os.Symlink(target, to)
			}
			if err != nil {
				return fmt.Errorf("mutate: copy: %w", err)
			}
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(src)
			if err == nil {
				err = os.WriteFile(to, data, fi.Mode().Perm())
			}
			if err != nil {
				return fmt.Errorf("mutate: copy: %w", err)
			}
		}
	}
	return nil
}

// snapshot records the files at rels under tree (or their absence) and
// returns the func that puts them back.
func snapshot(tree string, rels []string) (restore func() error, err error) {
	type saved struct {
		data   []byte
		mode   os.FileMode
		exists bool
	}
	files := map[string]saved{}
	for _, rel := range rels {
		p := filepath.Join(tree, rel)
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			files[p] = saved{}
		case err != nil:
			return nil, err
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			files[p] = saved{data, fi.Mode().Perm(), true}
		}
	}
	return func() error {
		for p, s := range files {
			if !s.exists {
				if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
				continue
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, s.data, s.mode); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// gitApply applies (or with check, only checks) the patch file in dir.
func gitApply(ctx context.Context, dir, patch string, check bool) (string, error) {
	args := []string{"apply", "--whitespace=nowarn"}
	if check {
		args = append(args, "--check")
	}
	cmd := exec.CommandContext(ctx, "git", append(args, patch)...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// goBuild builds the packages of the Go files among rels.
func goBuild(ctx context.Context, dir string, rels []string) (string, error) {
	var pkgs []string
	for _, rel := range rels {
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			continue
		}
		if pkg := "./" + filepath.ToSlash(filepath.Dir(rel)); !contains(pkgs, pkg) {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 {
		return "", nil
	}
	cmd := exec.CommandContext(ctx, goTool(), append([]string{"build"}, pkgs...)...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// goTool returns the go command: $GOROOT/bin/go of the running toolchain
// when it exists, else "go" from PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func count(rs []result, v verdict) int {
	n := 0
	for _, r := range rs {
		if r.verdict == v {
			n++
		}
	}
	return n
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string {
	var b bytes.Buffer
	for _, l := range strings.Split(s, "\n") {
		b.WriteString("    " + l + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// printMarkdown prints the results as the table of docs/RELIABILITY.md.
func printMarkdown(out io.Writer, rs []result) {
	fmt.Fprintln(out, "\n| mutant | promise it breaks | verdict | caught by |")
	fmt.Fprintln(out, "|---|---|---|---|")
	for _, r := range rs {
		by := make([]string, len(r.failed))
		for i, f := range r.failed {
			by[i] = "`" + f + "`"
		}
		fmt.Fprintf(out, "| `%s` | %s | %s | %s |\n", r.m.name, strings.ReplaceAll(r.m.promise, "|", `\|`), r.verdict, strings.Join(by, ", "))
	}
}
