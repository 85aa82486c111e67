// Package testbin builds the real plugin binaries tests run, once per test
// binary, with `go build`. Tests never fake a plugin: they start these.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build compiles each package path (e.g. "./testdata/echo") into dir, one
// binary named after the package's last element, and returns dir. The
// packages are built in one `go build` call so the toolchain shares work.
func Build(dir string, pkgs ...string) error {
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %v: %w", pkgs, err)
	}
	return nil
}

// TempDir makes a fresh folder for test binaries; the caller removes it.
func TempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", fmt.Errorf("make a folder for test plugins: %w", err)
	}
	return dir, nil
}

// BuildAs compiles one package into dir/name with extra -ldflags (e.g.
// "-X main.fault=panic"), for variants of a test plugin.
func BuildAs(dir, name, pkg, ldflags string) error {
	return buildTarget(dir, name, Target{Pkg: pkg, LDFlags: ldflags})
}

// buildTarget compiles t into dir/name.
func buildTarget(dir, name string, t Target) error {
	args := []string{"build", "-o", filepath.Join(dir, name), "-ldflags", t.LDFlags}
	if t.Tags != "" {
		args = append(args, "-tags", t.Tags)
	}
	cmd := exec.Command("go", append(args, t.Pkg)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s as %s: %w", t.Pkg, name, err)
	}
	return nil
}

// Target is one test binary to build: a package under a file name, with
// extra -ldflags for the variants of one test plugin.
type Target struct {
	// Pkg is the package path, relative to the test's package ("./testdata/echo").
	Pkg string
	// Name is the binary's file name; empty means the package's last
	// element, as `go build -o dir/` names it.
	Name string
	// LDFlags are extra -ldflags ("-X main.fault=panic").
	LDFlags string
	// Tags are build tags ("graftfailpoints"), for a test-only build.
	Tags string
}

// Pkgs is one Target per package, each named after its last element.
func Pkgs(pkgs ...string) []Target {
	out := make([]Target, 0, len(pkgs))
	for _, p := range pkgs {
		out = append(out, Target{Pkg: p})
	}
	return out
}

// Variant is pkg built as name with ldflags, for a variant of a plugin.
func Variant(name, pkg, ldflags string) Target {
	return Target{Pkg: pkg, Name: name, LDFlags: ldflags}
}

// Tagged is pkg built as name with build tags, for a test-only build
// (the failpoints of package upgrade).
func Tagged(name, pkg, tags string) Target {
	return Target{Pkg: pkg, Name: name, Tags: tags}
}

// BuildTargets builds every target into dir: the plain ones (no Name, no
// LDFlags) in one `go build` call, as Build does, then the others one by
// one, as BuildAs does. The toolchain's build cache makes a rebuild of
// unchanged sources cheap, so there is no cache of our own to go stale.
func BuildTargets(dir string, targets ...Target) error {
	var plain []string
	var named []Target
	for _, t := range targets {
		if t.Name == "" && t.LDFlags == "" && t.Tags == "" {
			plain = append(plain, t.Pkg)
		} else {
			named = append(named, t)
		}
	}
	if len(plain) > 0 {
		if err := Build(dir, plain...); err != nil {
			return err
		}
	}
	for _, t := range named {
		name := t.Name
		if name == "" {
			name = filepath.Base(t.Pkg)
		}
		if err := buildTarget(dir, name, t); err != nil {
			return err
		}
	}
	return nil
}

// Main is the body of a TestMain whose tests run real binaries: it builds
// the targets once per test binary run into a fresh folder (named after
// prefix), sets *dir to it, runs the tests, removes the folder and exits
// with the tests' status. A failed build exits 1, saying why, before any
// test runs, so no test fails for want of its plugin.
func Main(m *testing.M, prefix string, dir *string, targets ...Target) {
	d, err := TempDir(prefix)
	if err == nil {
		err = BuildTargets(d, targets...)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "build the test binaries:", err)
		if d != "" {
			_ = os.RemoveAll(d)
		}
		os.Exit(1)
	}
	*dir = d
	code := m.Run()
	_ = os.RemoveAll(d)
	os.Exit(code)
}
