package dynamic_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/dynamic"
)

func copyFile(t *testing.T, src, dst string, n int, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	if n > 0 {
		b = b[:n]
	}
	require.NoError(t, os.WriteFile(dst, b, mode))
}

func TestBadBinariesGetClearErrors(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho hello from a script\n"), 0o755))
	silentScript := filepath.Join(dir, "silent.sh")
	require.NoError(t, os.WriteFile(silentScript, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755))
	noexec := filepath.Join(dir, "noexec")
	copyFile(t, bin("echo"), noexec, 0, 0o644)
	st, err := os.Stat(bin("echo"))
	require.NoError(t, err)
	truncatedHalf := filepath.Join(dir, "truncated-half")
	copyFile(t, bin("echo"), truncatedHalf, int(st.Size()/2), 0o755)
	truncatedHead := filepath.Join(dir, "truncated-head")
	copyFile(t, bin("echo"), truncatedHead, 100, 0o755)
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o755))

	cases := []struct {
		name, path, behaviour, sha string
		kind                       error
		want                       []string
	}{
		{name: "bin-true", path: "/bin/true", kind: dynamic.ErrBadBinary,
			want: []string{"/bin/true", "not a graft plugin", "exited before the handshake", "exit status 0"}},
		{name: "script", path: script, kind: dynamic.ErrBadBinary,
			want: []string{"script.sh", "not a graft plugin", `first line on stdout is "hello from a script"`}},
		{name: "silent-script", path: silentScript, kind: dynamic.ErrStartTimeout,
			want: []string{"silent.sh", "no handshake within the start timeout (2s", "nothing written on stdout"}},
		{name: "truncated-half", path: truncatedHalf, kind: dynamic.ErrBadBinary,
			want: []string{"truncated-half"}},
		{name: "truncated-head", path: truncatedHead, kind: dynamic.ErrBadBinary,
			want: []string{"truncated-head", "cannot execute", "exec format error"}},
		{name: "empty", path: empty, kind: dynamic.ErrBadBinary, want: []string{"empty", "is an empty file"}},
		{name: "no-exec-bit", path: noexec, kind: dynamic.ErrBadBinary, want: []string{"noexec", "is not executable (mode -rw-r--r--)"}},
		{name: "directory", path: dir, kind: dynamic.ErrBadBinary, want: []string{dir, "is a directory"}},
		{name: "missing", path: filepath.Join(dir, "nope"), kind: dynamic.ErrBadBinary, want: []string{"nope", "no such file"}},
		{name: "wrong-cookie", path: bin("wrongcookie"), kind: dynamic.ErrBadBinary,
			want: []string{"wrongcookie", "wrong magic cookie"}},
		{name: "protocol-v2", path: bin("protov2"), kind: dynamic.ErrBadBinary,
			want: []string{"protov2", "unsupported protocol version", "Plugin version: 2"}},
		{name: "wrong-name", path: bin("wrongname"), behaviour: "echo", kind: dynamic.ErrBadBinary,
			want: []string{"wrongname", `behaviour name is "notecho", expected "echo"`}},
		{name: "sha256-mismatch", path: bin("echo"), sha: strings.Repeat("ab", 32), kind: dynamic.ErrBadBinary,
			want: []string{"echo", "sha256 mismatch: pinned abab", "file has " + sha256File(t, bin("echo"))}},
		{name: "sha256-invalid", path: bin("echo"), sha: "xyz", kind: dynamic.ErrBadBinary,
			want: []string{"invalid sha256 pin"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := config(t, "echo")
			cfg.Path, cfg.Behaviour, cfg.SHA256 = c.path, c.behaviour, c.sha
			// A bad binary is refused for what it is, not for running out of
			// time: its start timeout is generous, and only the silent
			// script, which is about the timeout, gets a short one.
			cfg.StartTimeout = 30 * time.Second
			if errors.Is(c.kind, dynamic.ErrStartTimeout) {
				cfg.StartTimeout = 2 * time.Second
			}
			before := children()
			t0 := time.Now()
			m, err := dynamic.Start(context.Background(), cfg)
			took := time.Since(t0)
			if m != nil {
				_ = m.Stop(context.Background())
			}
			require.Error(t, err)
			t.Log(err)
			require.ErrorIs(t, err, c.kind)
			var se *dynamic.StartError
			require.ErrorAs(t, err, &se)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
			if errors.Is(c.kind, dynamic.ErrStartTimeout) {
				require.GreaterOrEqual(t, took, cfg.StartTimeout, "the start timeout must not fire early")
			}
			require.ElementsMatch(t, before, children(), "no process left behind")
			emptyDir(t, cfg.SocketDir)
		})
	}
}

func TestSHA256PinAccepted(t *testing.T) {
	cfg := config(t, "echo")
	cfg.SHA256 = sha256File(t, bin("echo"))
	m := start(t, cfg)
	require.Equal(t, "echo", m.Info().Behaviour)
}

func sha256File(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
