package testbin

import (
	"log/slog"
	"strings"
	"testing"
)

// Logger logs warnings and errors through t, so a failing test shows what
// the core and its plugins said, and a passing one stays quiet.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
