package fsm_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/quiesce-dev/quiesce/fsm"
)

// Use go test ./fsm -run TestDiagrams -update (or make diagrams) to rewrite
// docs/diagrams and the diagram block in README.md from the code.
var update = flag.Bool("update", false, "rewrite docs/diagrams and README's diagram from the lifecycle")

const (
	readmeBegin = "<!-- diagram:begin (make diagrams) -->\n"
	readmeEnd   = "<!-- diagram:end -->\n"
)

// TestDiagrams fails when docs/diagrams or README's embedded diagram drift
// from the lifecycle definition.
func TestDiagrams(t *testing.T) {
	for _, tc := range []struct {
		format fsm.Format
		file   string
	}{
		{fsm.Mermaid, "lifecycle.mmd"},
		{fsm.DOT, "lifecycle.dot"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			want, err := fsm.Describe(tc.format)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := fsm.Describe(tc.format)
			if again != want {
				t.Fatal("Describe is not deterministic")
			}
			checkGolden(t, filepath.Join("..", "docs", "diagrams", tc.file), []byte(want))
		})
	}
	t.Run("README.md", func(t *testing.T) {
		mmd, _ := fsm.Describe(fsm.Mermaid)
		path := filepath.Join("..", "README.md")
		readme, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		begin := bytes.Index(readme, []byte(readmeBegin))
		end := bytes.Index(readme, []byte(readmeEnd))
		if begin < 0 || end < begin {
			t.Fatalf("%s has no %q … %q block", path, readmeBegin, readmeEnd)
		}
		block := readmeBegin + "```mermaid\n" + mmd + "```\n"
		got := string(readme[begin:end])
		if got == block {
			return
		}
		if !*update {
			t.Fatalf("%s diagram drifted from the lifecycle; run make diagrams", path)
		}
		out := append(append(append([]byte(nil), readme[:begin]...), block...), readme[end:]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	})
}

func checkGolden(t *testing.T, path string, want []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run make diagrams)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s drifted from the lifecycle; run make diagrams\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
