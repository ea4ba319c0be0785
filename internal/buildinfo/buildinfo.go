// Package buildinfo is the binary's build information: what the Go
// toolchain records (debug.ReadBuildInfo), with the version and VCS
// revision a build stamped with the linker taking precedence.
//
// A build from a module version or a git checkout knows both by itself. A
// build from a copy of the sources without .git (the container image: the
// build context leaves the history out) does not, and would report version
// "(devel)" and no revision; the Dockerfile stamps them instead:
//
//	go build -ldflags "-X github.com/quiesce-dev/quiesce/internal/buildinfo.Version=v1.2.3 \
//	  -X github.com/quiesce-dev/quiesce/internal/buildinfo.Revision=0123abc..." ./cmd/quiesce
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"slices"
)

// Version and Revision are set by the linker (-X) when the build stamps
// them; empty otherwise. Read them through Read.
var (
	Version  string
	Revision string
)

// Read returns debug.ReadBuildInfo's information with Version (as
// Main.Version) and Revision (as the vcs.revision setting) in place of
// what the toolchain recorded, when they were stamped. It returns a copy:
// the runtime's own is never changed. ok is false only when the binary
// carries no build information and nothing was stamped.
func Read() (bi *debug.BuildInfo, ok bool) {
	return read(debug.ReadBuildInfo, Version, Revision)
}

// read is Read with its inputs as arguments, for tests.
func read(readBuildInfo func() (*debug.BuildInfo, bool), version, revision string) (*debug.BuildInfo, bool) {
	orig, ok := readBuildInfo()
	out := &debug.BuildInfo{GoVersion: runtime.Version()}
	if ok && orig != nil {
		cp := *orig
		cp.Settings = slices.Clone(orig.Settings)
		out = &cp
	} else if version == "" && revision == "" {
		return nil, false
	}
	if version != "" {
		out.Main.Version = version
	}
	if revision != "" {
		i := slices.IndexFunc(out.Settings, func(s debug.BuildSetting) bool { return s.Key == "vcs.revision" })
		if i < 0 {
			out.Settings = append(out.Settings, debug.BuildSetting{Key: "vcs.revision", Value: revision})
		} else {
			out.Settings[i].Value = revision
		}
	}
	return out, true
}
