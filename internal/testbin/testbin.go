// Package testbin builds the real plugin binaries tests run, once per test
// binary, with `go build`. Tests never fake a plugin: they start these.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "-ldflags", ldflags, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s as %s: %w", pkg, name, err)
	}
	return nil
}
