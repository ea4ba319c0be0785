package buildinfo

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRead: stamped values win over what the toolchain recorded, each on
// its own; nothing stamped leaves the toolchain's record as it is; the
// runtime's record is never modified.
func TestRead(t *testing.T) {
	recorded := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/quiesce-dev/quiesce", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "-trimpath", Value: "true"}, {Key: "vcs.revision", Value: "aaaa"}}}, true
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	rev := func(bi *debug.BuildInfo) string {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
		return ""
	}
	for _, tt := range []struct {
		name              string
		read              func() (*debug.BuildInfo, bool)
		version, revision string
		ok                bool
		wantVer, wantRev  string
	}{
		{"NothingStamped", recorded, "", "", true, "(devel)", "aaaa"},
		{"BothStamped", recorded, "v1.2.3", "bbbb", true, "v1.2.3", "bbbb"},
		{"VersionOnly", recorded, "v1.2.3", "", true, "v1.2.3", "aaaa"},
		{"NoBuildInfoStamped", none, "v1.2.3", "bbbb", true, "v1.2.3", "bbbb"},
		{"NoBuildInfoNothingStamped", none, "", "", false, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bi, ok := read(tt.read, tt.version, tt.revision)
			require.Equal(t, tt.ok, ok)
			if !ok {
				return
			}
			assert.Equal(t, tt.wantVer, bi.Main.Version)
			assert.Equal(t, tt.wantRev, rev(bi))
			assert.NotEmpty(t, bi.GoVersion)
		})
	}
	orig, _ := recorded()
	bi, _ := read(func() (*debug.BuildInfo, bool) { return orig, true }, "v9", "cccc")
	assert.Equal(t, "cccc", rev(bi))
	assert.Equal(t, "aaaa", rev(orig), "the recorded build information is not modified")
	assert.Equal(t, "(devel)", orig.Main.Version)
}
