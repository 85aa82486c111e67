package dynamic_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// TestPluginGetsACleanEnvironment: of the host's environment a plugin sees
// PATH, HOME, LANG and TZ and what its config names ("KEY=value", or a bare
// KEY passed on), never the rest (credentials, GRAFT_SOCKET), and graft's
// own variables cannot be overridden by the config.
func TestPluginGetsACleanEnvironment(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
	t.Setenv("GRAFT_SOCKET", "/run/graft.sock")
	t.Setenv("PASS_ME", "along")
	t.Setenv("LANG", "C.UTF-8")
	cfg := config(t, "tree")
	cfg.Env = []string{"GREETING=hello", "PASS_ME", "NOT_SET_ANYWHERE", wire.EnvLivenessFD + "=9", "PATH=/opt/bin:/usr/bin:/bin"}
	m := start(t, cfg)
	res, err := m.Handle(context.Background(), dynamic.Batch{Actor: "a", State: dynamic.State{Schema: 1, Data: []byte("0")}, Messages: msgs("env")})
	require.NoError(t, err)
	env := map[string]string{}
	for _, kv := range strings.Split(string(res.Results[0].Reply), "\n") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	require.NotContains(t, env, "AWS_SECRET_ACCESS_KEY")
	require.NotContains(t, env, "GRAFT_SOCKET")
	require.NotContains(t, env, "NOT_SET_ANYWHERE")
	require.Equal(t, "hello", env["GREETING"])
	require.Equal(t, "along", env["PASS_ME"])
	require.Equal(t, "C.UTF-8", env["LANG"])
	require.Equal(t, "/opt/bin:/usr/bin:/bin", env["PATH"], "a configured PATH replaces the host's")
	require.Equal(t, "3", env[wire.EnvLivenessFD], "graft's own variables win")
	for k := range env {
		switch {
		case k == "PATH", k == "HOME", k == "LANG", k == "TZ", k == "GREETING", k == "PASS_ME",
			k == wire.MagicCookieKey, k == wire.EnvLivenessFD, k == wire.EnvCgroup, k == wire.EnvModuleID,
			strings.HasPrefix(k, "PLUGIN_"):
		default:
			t.Errorf("unexpected variable %s=%s in the plugin's environment", k, env[k])
		}
	}
	require.Error(t, dynamic.CheckEnv(wire.EnvLivenessFD+"=9"))
	require.Error(t, dynamic.CheckEnv("PLUGIN_MIN_PORT=1"))
	require.Error(t, dynamic.CheckEnv("=x"))
	require.Error(t, dynamic.CheckEnv("1X=y"))
	require.NoError(t, dynamic.CheckEnv("GOMAXPROCS=2"))
	require.NoError(t, dynamic.CheckEnv("AWS_REGION"))
}

// TestPluginInheritsNoDescriptors: a descriptor the host holds without
// close-on-exec (as one inherited from its own parent would be) does not
// reach the plugin; the plugin has /dev/null on stdin, its stdout and stderr
// pipes, and the liveness pipe on fd 3.
func TestPluginInheritsNoDescriptors(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "inherited")
	fd, err := unix.Open(secret, unix.O_RDWR|unix.O_CREAT, 0o600) // no O_CLOEXEC
	require.NoError(t, err)
	defer unix.Close(fd)
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	require.NoError(t, err)
	require.Zero(t, flags&unix.FD_CLOEXEC, "the test holds a descriptor exec would pass on")

	m := start(t, config(t, "tree"))
	dir := "/proc/" + strconv.Itoa(m.Pid()) + "/fd"
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	links := map[int]string{}
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		links[n], _ = os.Readlink(filepath.Join(dir, e.Name()))
	}
	for n, l := range links {
		require.NotEqual(t, secret, l, "the plugin inherited the host's descriptor as its fd %d", n)
	}
	require.Equal(t, "/dev/null", links[0])
	for _, n := range []int{1, 2, 3} {
		require.True(t, strings.HasPrefix(links[n], "pipe:"), "fd %d is %s", n, links[n])
	}
}
