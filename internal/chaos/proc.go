package chaos

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// procInfo identifies a process beyond its pid: pids are reused, so the
// harness signals a process only if its parent and start time still match
// what it saw when it chose it (the brief's "never signal a PID you no
// longer own" applies to the harness too).
type procInfo struct {
	pid   int
	ppid  int
	start uint64 // clock ticks after boot, field 22 of /proc/PID/stat
	state byte
	exe   string
}

// readProc reads a process's identity from /proc.
func readProc(pid int) (procInfo, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return procInfo{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+2:]) // f[0] is field 3 (state)
	if len(f) < 20 {
		return procInfo{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return procInfo{pid: pid, ppid: ppid, start: start, state: f[0][0], exe: exe}, nil
}

// alive says whether the process runs (not a zombie).
func (p procInfo) alive() bool { return p.state != 'Z' && p.state != 'X' }

// same says whether pid is still the process p described.
func (p procInfo) same() bool {
	q, err := readProc(p.pid)
	return err == nil && q.start == p.start && q.ppid == p.ppid && q.alive()
}

// signal sends sig to p if it is still the same process.
func (p procInfo) signal(sig syscall.Signal) error {
	if !p.same() {
		return fmt.Errorf("process %d is gone or is no longer the one chosen", p.pid)
	}
	if err := syscall.Kill(p.pid, sig); err != nil {
		return fmt.Errorf("signal %v to %d: %w", sig, p.pid, err)
	}
	return nil
}

// processesUnder lists the live processes whose executable lies under dir:
// the core and every plugin of this run (the binary cache is inside the
// run's folder), whoever their parent is now.
func processesUnder(dir string) []procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink("/proc/" + e.Name() + "/exe")
		if err != nil || !strings.HasPrefix(exe, dir+string(filepath.Separator)) {
			continue
		}
		if p, err := readProc(pid); err == nil && p.alive() {
			out = append(out, p)
		}
	}
	return out
}

// fdCount counts pid's open descriptors, leaving out files under skip (the
// store's files, whose number follows compactions, not leaks).
func fdCount(pid int, skip string) (int, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("list descriptors of %d: %w", pid, err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || strings.HasPrefix(target, skip) {
			continue
		}
		n++
	}
	return n, nil
}

// fdKinds summarises the core's descriptors (outside skip) by kind, with
// socket and pipe inode numbers dropped, for a leak report: "socket x12".
func fdKinds(pid int, skip string) string {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	kinds := map[string]int{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || strings.HasPrefix(target, skip) {
			continue
		}
		if i := strings.Index(target, ":["); i > 0 {
			target = target[:i]
		}
		kinds[target]++
	}
	var out []string
	for k, n := range kinds {
		out = append(out, fmt.Sprintf("%s x%d", k, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ") + "; children: " + children(pid)
}

// children lists the live child processes of pid with their commands.
func children(pid int) string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			out = append(out, e.Name()+" "+strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " | ")
}

// socketsUnder lists the unix socket files under dir.
func socketsUnder(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSocket != 0 {
			out = append(out, path)
		}
		return nil
	})
	return out
}
