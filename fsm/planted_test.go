package fsm_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlantedBugsAreCaught shows the property tests have teeth: it builds
// this package's tests with -tags quiesce_plantedbugs, then reruns the
// property tests once per planted bug and requires each run to fail (and a
// run with no bug to pass). Planted bugs exist only under that tag.
func TestPlantedBugsAreCaught(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a second test binary")
	}
	if os.Getenv("QUIESCE_PLANTED_BUG") != "" {
		t.Skip("inside a planted-bug run")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	bin := filepath.Join(t.TempDir(), "fsm-planted.test")
	build := exec.Command(goBin, "test", "-c", "-tags", "quiesce_plantedbugs", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build planted-bug test binary: %v\n%s", err, out)
	}
	bugs := []struct{ name, catches string }{
		{"", ""}, // control: no bug, the properties hold
		{"split-gate", "I1"},
		{"resume-after-shutdown", "resume in shutting_down"},
		{"double-release", "I4"},
		{"repeat-notification", "I3"},
	}
	for _, bug := range bugs {
		name := bug.name
		if name == "" {
			name = "none"
		}
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(bin, "-test.run", "^TestProperty", "-test.count", "1")
			cmd.Env = append(os.Environ(), "QUIESCE_PLANTED_BUG="+bug.name, "RAPID_NOFAILFILE=1", "RAPID_CHECKS=300")
			out, err := cmd.CombinedOutput()
			if bug.name == "" {
				if err != nil {
					t.Fatalf("property tests fail with no planted bug: %v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("planted bug %q not caught:\n%s", bug.name, out)
			}
			if !strings.Contains(string(out), bug.catches) {
				t.Fatalf("planted bug %q failed for another reason (want %q):\n%s", bug.name, bug.catches, out)
			}
			t.Logf("caught %q: %s", bug.name, firstLine(string(out), bug.catches))
		})
	}
}

// firstLine returns the first line of out containing substr.
func firstLine(out, substr string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, substr) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
