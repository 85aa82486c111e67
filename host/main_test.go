package host_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/graft-host/graft/internal/testbin"
)

// pluginDir holds the real test behaviour (core's recorder), built once.
var pluginDir string

func TestMain(m *testing.M) {
	dir, err := testbin.TempDir("graft-host-plugins-")
	if err == nil {
		err = testbin.Build(dir, "../core/testdata/recorder")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func recorder() string { return filepath.Join(pluginDir, "recorder") }
