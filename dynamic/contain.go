package dynamic

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/graft-host/graft/dynamic/internal/cgroup"
	"github.com/graft-host/graft/dynamic/internal/proc"
	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// Resources are a module's limits, enforced by its cgroup; zero means no
// limit. They mean what systemd's MemoryMax, TasksMax and CPUWeight mean,
// and apply to the module's whole process tree.
type Resources struct {
	// Memory is the most memory in bytes the module's processes may use
	// together, swap included. Over it the kernel kills the plugin, and
	// its CrashError says "killed: over its memory limit of 64 MiB"
	// (errors.Is ErrMemoryLimit).
	Memory int64
	// Pids bounds the tasks (processes and threads; a Go plugin has about
	// ten) the module may have at once; a fork over it fails.
	Pids int64
	// CPUWeight is the module's CPU share under contention, 1 to 10000;
	// every other process has 100.
	CPUWeight int64
}

// Containment says how a module's process tree is kept together, so that
// stopping the module (or the host dying) ends all of it.
type Containment int

const (
	// ContainAuto (the default) puts each module in a cgroup of its own
	// where the machine offers one (v2, or v1), and otherwise relies on
	// the process group plus, if the host is a child subreaper (see
	// PrepareHost), the adoption of escaped descendants.
	ContainAuto Containment = iota
	// ContainGroup uses the process group and subreaper adoption only,
	// never a cgroup: for a host that manages the cgroups itself.
	ContainGroup
)

// PrepareHost readies this process to contain its plugins' process trees,
// once, at the start of a host program (graft run calls it). Where a
// cgroup hierarchy is usable it removes the groups that hosts killed with
// kill -9 left behind (and kills what is still in them). Where there is
// none it makes this process a child subreaper (PR_SET_CHILD_SUBREAPER), so
// that a plugin's descendant whose parent dies comes back to it, to be
// killed with its module, instead of going to init. It returns what it
// chose, in words, for the start-up log.
func PrepareHost(ctx context.Context, log *slog.Logger) (string, error) {
	h, err := cgroup.Detect(cgroup.Auto)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		removed, serr := h.Sweep(ctx)
		if len(removed) > 0 {
			log.Warn("removed the cgroups of plugins left by a host that was killed", "groups", strings.Join(removed, ", "))
		}
		if serr != nil {
			log.Warn("cannot remove every cgroup left by a killed host", "err", serr)
		}
		return "each plugin module in a cgroup of its own (" + h.String() + ")", nil
	}
	if perr := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); perr != nil {
		return "", fmt.Errorf("contain plugin processes: no usable cgroup (%w), and cannot become a child subreaper: %w", err, perr)
	}
	return fmt.Sprintf("no usable cgroup (%v): plugin modules are contained by their process group, and this process is a child subreaper that kills their escaped descendants", err), nil
}

// tree makes the container of one module's process tree, and returns the
// environment the plugin needs to know it. A module asking for limits on a
// machine that cannot apply them runs without them, with a warning.
func (m *Instance) tree() (proc.Tree, []string) {
	r := m.cfg.Resources
	want := r.Memory > 0 || r.Pids > 0 || r.CPUWeight > 0
	if m.cfg.Containment == ContainAuto {
		h, err := cgroup.Detect(cgroup.Auto)
		if err == nil {
			m.sweep(h)
			g, missing, err := h.New(cgroup.Resources{Memory: r.Memory, Pids: r.Pids, CPUWeight: r.CPUWeight})
			if err == nil {
				for _, mi := range missing {
					m.log.Warn("a limit of this behaviour is not applied", "why", mi)
				}
				return g, []string{wire.EnvCgroup + "=" + g.Dir()}
			}
			m.log.Warn("cannot put the plugin in a cgroup; its escaped descendants may outlive it", "err", err)
		} else if want {
			m.log.Warn("the limits of this behaviour are not applied: no usable cgroup", "why", err.Error())
		}
	} else if want {
		m.log.Warn("the limits of this behaviour are not applied: cgroups are not in use (Containment)")
	}
	if a := proc.NewAdopter(); a != nil {
		return a, nil
	}
	return nil, nil
}

// sweep removes what hosts killed with kill -9 left in the hierarchy (their
// plugins killed themselves; their empty groups remain), so that a machine
// whose cores are killed over and over does not collect cgroups.
func (m *Instance) sweep(h *cgroup.Hierarchy) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	removed, err := h.Sweep(ctx)
	if len(removed) > 0 {
		m.log.Info("removed the cgroups of plugins left by a host that was killed", "groups", strings.Join(removed, ", "))
	}
	if err != nil {
		m.log.Warn("cannot remove every cgroup left by a killed host", "err", err)
	}
}
