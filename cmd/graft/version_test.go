package main

import (
	"encoding/json"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/internal/buildinfo"
)

// graft version says which build it is, and --core asks the running core,
// whose CoreInfo now carries the same.
func TestVersionOfTheCommandAndTheCore(t *testing.T) {
	p := startGraft(t, defaultConfig(), []string{"a"})
	var out struct {
		Client buildinfo.Info `json:"client"`
	}
	raw := p.ok(t, "version", "--core", "--json")
	require.NoError(t, json.Unmarshal([]byte(raw), &out))
	assert.Equal(t, runtime.Version(), out.Client.GoVersion)
	assert.NotEmpty(t, out.Client.Version)
	var withCore struct {
		Core map[string]any `json:"core"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &withCore))
	assert.Equal(t, out.Client.Version, withCore.Core["version"], "the core runs the same build")
	assert.Equal(t, out.Client.GoVersion, withCore.Core["go_version"])
	text := p.ok(t, "version", "--core")
	assert.Contains(t, text, "graft "+out.Client.String())
	assert.Contains(t, text, "core  "+out.Client.String())
}
