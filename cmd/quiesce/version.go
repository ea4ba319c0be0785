package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/quiesce-dev/quiesce/internal/buildinfo"
)

// develVersion is the version when the build does not know one (a build
// from a work tree, not from a module version).
const develVersion = "(devel)"

// buildInfo is what the binary knows about its build.
type buildInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
}

// readBuildInfo returns the build's version and VCS stamp (what the
// toolchain recorded, or what the build stamped: see internal/buildinfo).
func readBuildInfo() buildInfo {
	bi, ok := buildinfo.Read()
	if !ok {
		return buildInfo{Version: develVersion, Go: runtime.Version()}
	}
	return buildInfoFrom(bi)
}

// buildInfoFrom extracts the version (develVersion when unknown) and the
// vcs.revision, vcs.time and vcs.modified settings of bi.
func buildInfoFrom(bi *debug.BuildInfo) buildInfo {
	info := buildInfo{Version: bi.Main.Version, Go: bi.GoVersion}
	if info.Version == "" {
		info.Version = develVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the one-line form: "quiesce v1.2.3 (abc1234def01, 2026-01-02T03:04:05Z, modified) go1.26".
func (b buildInfo) String() string {
	var vcs []string
	if b.Revision != "" {
		vcs = append(vcs, b.Revision[:min(len(b.Revision), 12)])
	}
	if b.Time != "" {
		vcs = append(vcs, b.Time)
	}
	if b.Modified {
		vcs = append(vcs, "modified")
	}
	s := "quiesce " + b.Version
	if len(vcs) > 0 {
		s += " (" + strings.Join(vcs, ", ") + ")"
	}
	if b.Go != "" {
		s += " " + b.Go
	}
	return s
}

// versionCmd is "quiesce version" (also "quiesce --version").
type versionCmd struct {
	json bool
}

func (c *versionCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("version", "[--json]", `
Print the version and the commit it was built from (revision, commit time,
and whether the work tree had changes).`)
	fs.BoolVar(&c.json, "json", false, "print JSON: version, revision, time, modified, go")
	return fs
}

func (c *versionCmd) run(_ context.Context, m *Main) error {
	info := readBuildInfo()
	if c.json {
		return writeJSON(m.Stdout, info)
	}
	_, err := fmt.Fprintln(m.Stdout, info)
	return err
}
