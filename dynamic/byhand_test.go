package dynamic_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A plugin run by hand says which graft behaviour it is and how it is meant
// to run, instead of go-plugin's generic text.
func TestPluginRunByHandExplainsItself(t *testing.T) {
	cmd := exec.Command(filepath.Join(pluginDir, "echo"))
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 1, ee.ExitCode())
	text := string(out)
	assert.Contains(t, text, `graft behaviour "echo", version`)
	assert.Contains(t, text, "graft run --config")
	assert.NotContains(t, text, "This binary is a plugin", "go-plugin's generic text is replaced")
}
