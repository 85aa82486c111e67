package host_test

import (
	"path/filepath"
	"testing"

	"github.com/graft-host/graft/internal/testbin"
)

// pluginDir holds the real test behaviour (core's recorder), built once.
var pluginDir string

func TestMain(m *testing.M) {
	testbin.Main(m, "graft-host-plugins-", &pluginDir, testbin.Pkgs("../core/testdata/recorder")...)
}

func recorder() string { return filepath.Join(pluginDir, "recorder") }
