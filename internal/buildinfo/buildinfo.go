// Package buildinfo says which graft this is, from what the Go toolchain
// stamps into every binary (runtime/debug.ReadBuildInfo): the module
// version, the commit and whether the tree was modified, and the Go
// version. Nothing is set by hand at build time, so a plain `go build` or
// `go install` carries it.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Info is one binary's build.
type Info struct {
	// Version is the main module's version: a tag, or a pseudo-version
	// for a build from a checkout ("(devel)" when the toolchain had none).
	Version string `json:"version"`
	// Commit is the VCS revision built, with "+dirty" when the tree had
	// changes ("" when unknown).
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"go_version"`
}

// Read returns this binary's build.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(unknown)"}
	}
	out := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if out.Version == "" {
		out.Version = "(devel)"
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			out.Commit = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && out.Commit != "" {
		out.Commit += "+dirty"
	}
	return out
}

// String is the build in one line, as `graft version` prints it, the
// commit cut to 12 hex digits.
func (i Info) String() string {
	s := i.Version
	if c, dirty := strings.CutSuffix(i.Commit, "+dirty"); c != "" {
		s += " (commit " + c[:min(12, len(c))]
		if dirty {
			s += "+dirty"
		}
		s += ")"
	}
	return s + " " + i.GoVersion
}
