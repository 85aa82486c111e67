package dynamic_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/internal/testbin"
)

// A graft plugin that dies in main before serving (panic, log.Fatal,
// os.Exit) crashed: the error says so, with its exit status and the first
// lines of its stderr. "Not a graft plugin" stays for a program that exits
// 0 silently (see TestBadBinariesGetClearErrors: /bin/true).
func TestCrashAtStartIsReportedAsACrash(t *testing.T) {
	for _, c := range []struct {
		mode string
		want []string
	}{
		{"panic", []string{"crashed at start", "exited before the handshake", "exit status 2", "panic: crashstart: cannot open its database", "goroutine 1"}},
		{"exit1", []string{"crashed at start", "exit status 1", "crashstart: missing setting DB_URL"}},
		{"fatal", []string{"crashed at start", "exit status 1", "crashstart: fatal: config unreadable"}},
		{"silent1", []string{"crashed at start", "exit status 1", "writing nothing on stdout or stderr"}},
		{"exit0", []string{"exited before the handshake without serving", "exit status 0", "usage: crashstart (run me from graft)"}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			cfg := config(t, "crashstart")
			cfg.Env = []string{"CRASHSTART_MODE=" + c.mode}
			before := children()
			m, err := dynamic.Start(context.Background(), cfg)
			if m != nil {
				_ = m.Stop(context.Background())
			}
			require.Error(t, err)
			t.Log(err)
			require.ErrorIs(t, err, dynamic.ErrBadBinary)
			msg := err.Error()
			assert.NotContains(t, msg, "not a graft plugin")
			assert.True(t, strings.HasPrefix(msg, "graft: start plugin "+bin("crashstart")+": "), msg)
			for _, w := range c.want {
				assert.Contains(t, msg, w)
			}
			assert.Less(t, strings.Count(msg, `\n`), 6, "only the first lines of stderr are quoted")
			require.ElementsMatch(t, before, children(), "no process left behind")
			emptyDir(t, cfg.SocketDir)
		})
	}
}

// The cached copy the core runs is named as the user's binary, with the
// cache file as a detail.
func TestStartErrorWithSourceNamesTheUsersBinary(t *testing.T) {
	cfg := config(t, "crashstart")
	cfg.Env = []string{"CRASHSTART_MODE=exit1"}
	_, err := dynamic.Start(context.Background(), cfg)
	var se *dynamic.StartError
	require.ErrorAs(t, err, &se)
	named := se.WithSource("./plugins/crashstart", "1.0.0")
	assert.True(t, strings.HasPrefix(named.Error(),
		"graft: start plugin ./plugins/crashstart (version 1.0.0; cached as "+bin("crashstart")+"): crashed at start"), named.Error())
	assert.ErrorIs(t, named, dynamic.ErrBadBinary)
	assert.Equal(t, bin("crashstart"), se.Path, "the original is unchanged")
}

// "plugin started" names each of behaviour, version and pid once.
func TestPluginStartedLogHasEachKeyOnce(t *testing.T) {
	var logs testbin.Buffer
	cfg := config(t, "echo")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := start(t, cfg)
	var line string // logged before Start returns
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="plugin started"`) {
			line = l
		}
	}
	require.NotEmpty(t, line, "a plugin started line:\n%s", logs.String())
	t.Log(line)
	for _, key := range []string{"behaviour=", "version=", "pid=", "schema="} {
		assert.Equal(t, 1, strings.Count(line, " "+key), "%s once in %q", key, line)
	}
	assert.Contains(t, line, "behaviour=echo")
	assert.Contains(t, line, "version=2.0.0")
	assert.Contains(t, line, "schema=2")
	assert.Contains(t, line, "pid="+strconv.Itoa(m.Pid()))
}
