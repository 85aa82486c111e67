package proc

import (
	"fmt"

	"github.com/graft-host/graft/dynamic/internal/cgroup"
)

// limitHit says which limit the kernel enforced on the module's cgroup, ""
// if none (or no cgroup), and whether it was the memory limit.
func (p *Process) limitHit() (string, bool) {
	g, ok := p.tree.(*cgroup.Group)
	if !ok {
		return "", false
	}
	ev, r := g.Events(), g.Resources()
	switch {
	case ev.OOMKills > 0:
		return "over its memory limit of " + FormatBytes(r.Memory), true
	case ev.PidsMax > 0:
		return fmt.Sprintf("it reached its pids limit of %d (%d forks refused)", r.Pids, ev.PidsMax), false
	}
	return "", false
}

// FormatBytes writes n in the largest binary unit that divides it: 64 MiB,
// 1536 KiB, 1000 bytes.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
