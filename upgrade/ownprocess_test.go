package upgrade_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/upgrade"
)

// When every actor of a behaviour runs in a process of its own, the shared
// module an upgrade or rollback migrates their states with is stopped at
// the end: after each op the core runs one module per actor and no more.
// (It used to run until the next upgrade; the chaos run's descriptor check
// found it.)
func TestOwnProcessUpgradeLeavesNoSharedModule(t *testing.T) {
	dir := t.TempDir()
	install(t, "kv1", dir+"/kv")
	s := bootWith(t, dir, 3, upgrade.Options{}, func(cfg *core.Config) {
		for i := range cfg.Actors {
			cfg.Actors[i].OwnProcess = true
		}
	})
	modules := func(what string) {
		t.Helper()
		for _, a := range s.actors { // each actor's own module runs once it has work
			_, err := s.core.Call(ctxFor(t, 20*time.Second), a, []byte("x"), core.SendOptions{})
			require.NoError(t, err)
		}
		waitFor(t, 20*time.Second, what+": one module process per actor", func() bool { return len(childProcesses()) == 3 })
	}
	modules("at start")
	install(t, "kv2", s.source)
	_, err := s.mgr.Upgrade(ctxFor(t, 30*time.Second), "kv", "")
	require.NoError(t, err)
	modules("after the upgrade")
	_, err = s.mgr.Rollback(ctxFor(t, 30*time.Second), "kv")
	require.NoError(t, err)
	modules("after the rollback")
}

// childProcesses lists this process's live children (the core's modules
// run in process groups of their own, so they are found by parent pid).
func childProcesses() []int {
	ents, _ := os.ReadDir("/proc")
	me := strconv.Itoa(os.Getpid())
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] != "Z" && f[1] == me {
			out = append(out, pid)
		}
	}
	return out
}
