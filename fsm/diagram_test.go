package fsm_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

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
			require.NoError(t, err)
			again, _ := fsm.Describe(tc.format)
			require.Equal(t, want, again, "Describe is not deterministic")
			checkGolden(t, filepath.Join("..", "docs", "diagrams", tc.file), []byte(want))
		})
	}
	t.Run("README.md", func(t *testing.T) {
		mmd, _ := fsm.Describe(fsm.Mermaid)
		path := filepath.Join("..", "README.md")
		readme, err := os.ReadFile(path)
		require.NoError(t, err)
		begin := bytes.Index(readme, []byte(readmeBegin))
		end := bytes.Index(readme, []byte(readmeEnd))
		require.GreaterOrEqualf(t, begin, 0, "%s has no %q … %q block", path, readmeBegin, readmeEnd)
		require.GreaterOrEqualf(t, end, begin, "%s has no %q … %q block", path, readmeBegin, readmeEnd)
		block := readmeBegin + "```mermaid\n" + mmd + "```\n"
		got := string(readme[begin:end])
		if got == block {
			return
		}
		require.Truef(t, *update, "%s diagram drifted from the lifecycle; run make diagrams", path)
		out := append(append(append([]byte(nil), readme[:begin]...), block...), readme[end:]...)
		require.NoError(t, os.WriteFile(path, out, 0o644))
	})
}

func checkGolden(t *testing.T, path string, want []byte) {
	t.Helper()
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, want, 0o644))
		return
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err, "run make diagrams")
	require.Equalf(t, string(want), string(got), "%s drifted from the lifecycle; run make diagrams", path)
}
