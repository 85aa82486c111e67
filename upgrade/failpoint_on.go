//go:build graftfailpoints

package upgrade

import (
	"os"
	"syscall"
)

// failpointEnv is the environment variable that names the failpoint at
// which a core built with the graftfailpoints tag kills itself; it exists
// only in such builds, so a release binary cannot be told to.
const failpointEnv = "GRAFT_FAILPOINT"

// failpoint kills the core with SIGKILL if failpointEnv names at: the
// crash tests' way of stopping it at exactly that instant, with no chance
// to clean up, as kill -9 would.
func (m *Manager) failpoint(at Failpoint) {
	if os.Getenv(failpointEnv) != string(at) {
		return
	}
	m.log.Warn("failpoint: killing the core", "step", string(at))
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // never returns: the signal is on its way
}
