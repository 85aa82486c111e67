package config

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/core/supervisor"
	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/mailbox"
)

// SocketName is the control socket's file name inside control.dir; a fixed
// name lets every tool find the core from the folder alone.
const SocketName = "graft.sock"

// maxSocketPath is the longest unix socket path every platform accepts
// (sun_path is 104 bytes on the BSDs, 108 on Linux, including the NUL).
const maxSocketPath = 103

// Config is a validated config file, with every path absolute.
type Config struct {
	// File is the absolute path of the config file itself.
	File string
	// Store is where and how durably the mailboxes are kept.
	Store Store
	// Control says where the control socket lives.
	Control Control
	// Limits bound messages and retries.
	Limits Limits
	// Supervision configures every behaviour's supervisor (OTP settings).
	Supervision core.SupervisionConfig
	// Behaviours by behaviour name (the name the plugin must report).
	Behaviours map[string]core.BehaviourConfig
	// Actors in file order, which is their start order.
	Actors []core.ActorConfig
	// Upgrade is how every upgrade moves actors (the upgrade section).
	Upgrade Upgrade
	// UpgradePolicies are, by behaviour, the canary its upgrades start
	// with (behaviours.NAME.upgrade); a behaviour without one upgrades
	// all its actors, in groups.
	UpgradePolicies map[string]UpgradePolicy
	// Cluster, when its Member is set, makes this core one member of a
	// cluster of cores over the etcd store (the cluster section).
	Cluster Cluster

	lines   map[string]int // key path -> line, for checks after decoding
	actorAt []int          // line of each actor entry
}

// Store is the `store` section.
type Store struct {
	// Path is the folder of the embedded store; with another backend it
	// still holds this core's module cache and upgrade journal.
	Path string
	// Durability is sync (default) or relaxed (embedded store only).
	Durability mailbox.Durability
	// Backend is BackendPebble (default) or BackendEtcd.
	Backend string
	// Etcd configures the etcd backend.
	Etcd Etcd
}

// Control is the `control` section: the folder of this core's sockets.
type Control struct {
	// Dir holds the control socket and the plugins' socket folder.
	Dir string
	// Socket is Dir/graft.sock, the control socket. Its lock (Socket +
	// ".lock") makes Dir one running core's own.
	Socket string
	// PluginSockets is Dir/p, the folder under which each plugin process
	// gets a socket folder of its own (core.Config.SocketDir). The core
	// empties it when it starts: holding the control socket's lock, it is
	// the only core using Dir, so anything there was left by a core that
	// was killed (kill -9) and is safe to remove.
	PluginSockets string
}

// PluginSocketsName is the plugins' socket folder's name inside
// control.dir. It is short because a plugin's unix socket path, nested
// below it, must fit in 107 bytes.
const PluginSocketsName = "p"

// ControlAt is the control section of a core whose sockets live in dir:
// the one place that derives the socket and plugin folder paths, for
// files and for configs built in Go alike.
func ControlAt(dir string) Control {
	return Control{Dir: dir, Socket: filepath.Join(dir, SocketName), PluginSockets: filepath.Join(dir, PluginSocketsName)}
}

// Limits is the `limits` section.
type Limits struct {
	// MaxMessageSize bounds payloads and replies in bytes.
	MaxMessageSize int
	// MaxAttempts is how often a message may fail before it is
	// dead-lettered.
	MaxAttempts int
	// BatchSize bounds the messages handed to a module at once.
	BatchSize int
	// MaxStateSize bounds an actor's encoded state in bytes.
	MaxStateSize int
	// MaxBatchBytes bounds the payload bytes handed to a module at once.
	MaxBatchBytes int
}

// Problem is one thing wrong with a config file, located by line (0 when
// the problem has no single place, such as a requirement cycle) and key.
type Problem struct {
	Line    int
	Key     string
	Message string
}

// Error lists every problem of a config file, so an operator fixes them in
// one pass instead of one restart per mistake.
type Error struct {
	// File is the config file, or "" for a config built in Go.
	File     string
	Problems []Problem
}

// Error formats one problem per line as FILE:LINE: KEY: message (KEY:
// message for a config built in Go).
func (e *Error) Error() string {
	var b strings.Builder
	n := len(e.Problems)
	plural := "s"
	if n == 1 {
		plural = ""
	}
	if e.File == "" { // a config built in Go: no file, no lines
		fmt.Fprintf(&b, "invalid config (built in Go; %d problem%s; nothing was started):", n, plural)
	} else {
		fmt.Fprintf(&b, "invalid config %s (%d problem%s; nothing was started):", e.File, n, plural)
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		if e.File != "" {
			b.WriteString(e.File)
			if p.Line > 0 {
				fmt.Fprintf(&b, ":%d", p.Line)
			}
			b.WriteString(": ")
		}
		if p.Key != "" {
			b.WriteString(p.Key)
			b.WriteString(": ")
		}
		b.WriteString(p.Message)
	}
	return b.String()
}

// Load reads, decodes and validates the config file at path, checking the
// file system too (binaries exist and are executable). It returns *Error
// listing every problem, or a wrapped I/O error if the file cannot be read.
func Load(path string) (*Config, error) { return LoadFor(path, nil) }

// LoadFor is Load for a core that keeps its own copies of the binaries: a
// behaviour whose binary does not exist is not a problem when
// cached(cfg, behaviour) says the core already holds the version its
// actors run (`graft run` then starts it from its binary cache).
func LoadFor(path string, cached func(cfg *Config, behaviour string) bool) (*Config, error) {
	cfg, problems, err := parse(path)
	if err != nil {
		return nil, err
	}
	problems = append(problems, cfg.checkFiles(cached)...)
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
		return nil, &Error{File: cfg.File, Problems: problems}
	}
	return cfg, nil
}

// Socket returns the control socket path a config file names. It checks
// only what locating the socket needs, so a client can still reach a
// running core while the file's other sections are being edited.
func Socket(path string) (string, error) {
	cfg, problems, err := parse(path)
	if err != nil {
		return "", err
	}
	var mine []Problem
	for _, p := range problems {
		if p.Key == "" || strings.HasPrefix(p.Key, "control") {
			mine = append(mine, p)
		}
	}
	if len(mine) > 0 {
		return "", &Error{File: cfg.File, Problems: mine}
	}
	return cfg.Control.Socket, nil
}

// parse decodes the file and checks everything but the file system.
func parse(path string) (*Config, []Problem, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config %s: %w", path, err)
	}
	data, err := readFile(abs)
	if err != nil {
		return nil, nil, err
	}
	d := &decoder{base: filepath.Dir(abs)}
	cfg := d.decode(data)
	cfg.File = abs
	cfg.lines = d.lines
	cfg.actorAt = d.actorAt
	d.validate(cfg)
	return cfg, d.problems, nil
}

// MaxFileSize bounds a config file: real ones are a few KiB, and a bound
// keeps a wrong path (a log, a disk image) from filling memory.
const MaxFileSize = 1 << 20

// readFile reads the config file at path: a regular file of at most
// MaxFileSize bytes. Anything else (a FIFO, /dev/zero, a directory) is
// refused before it is read, and never waited on: it is opened
// non-blocking, so a FIFO with no writer cannot hang the caller.
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read config %s: not a regular file (%s): give the path of a YAML config file", path, fileKind(fi.Mode()))
	}
	tooBig := func(size int64) error {
		return fmt.Errorf("read config %s: the file is %d bytes, over the %d-byte (1 MiB) limit of a config file: is it the right file?", path, size, MaxFileSize)
	}
	if fi.Size() > MaxFileSize {
		return nil, tooBig(fi.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > MaxFileSize { // it grew since Stat
		return nil, tooBig(int64(len(data)))
	}
	return data, nil
}

// fileKind names what a file that is not a regular file is.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}

// Core turns the config into the runtime's configuration. The store is
// opened by the core itself (through OpenStore), so it logs to logger too.
func (c *Config) Core(logger *slog.Logger, observer core.Observer) core.Config {
	store := c.Store
	maxSize := c.Limits.MaxMessageSize
	storeLog := logger.With("component", "store")
	return core.Config{
		OpenStore: func(opts mailbox.Options) (mailbox.Store, error) {
			opts.Durability, opts.MaxMessageSize, opts.Logger = store.Durability, maxSize, storeLog
			return store.open(opts)
		},
		Behaviours:     c.Behaviours,
		Actors:         c.Actors,
		Supervision:    c.Supervision,
		BatchSize:      store.batchSize(c.Limits.BatchSize),
		MaxAttempts:    c.Limits.MaxAttempts,
		MaxMessageSize: c.Limits.MaxMessageSize,
		MaxStateSize:   c.Limits.MaxStateSize,
		MaxBatchBytes:  c.Limits.MaxBatchBytes,
		SocketDir:      c.Control.PluginSockets,
		Logger:         logger,
		Observer:       observer,
	}
}

// BinaryCacheDir is where the core keeps its binary cache and upgrade
// journal: next to the store, so that the bytes the store's actors ran
// travel with it.
func (c *Config) BinaryCacheDir() string { return filepath.Join(c.Store.Path, "modules") }

// defaults is the config before the file is applied.
func defaults() *Config {
	return &Config{
		Store: Store{Durability: mailbox.DurabilitySync, Backend: BackendPebble},
		Limits: Limits{
			MaxMessageSize: mailbox.DefaultMaxMessageSize,
			MaxAttempts:    5,
			BatchSize:      64,
			MaxStateSize:   dynamic.DefaultMaxStateSize,
			MaxBatchBytes:  dynamic.DefaultMaxBatchBytes,
		},
		Supervision: core.SupervisionConfig{
			Strategy:    supervisor.OneForOne,
			MaxRestarts: supervisor.DefaultMaxRestarts,
			Period:      supervisor.DefaultPeriod,
			BackoffMin:  100 * time.Millisecond,
			BackoffMax:  10 * time.Second,
		},
		Behaviours: map[string]core.BehaviourConfig{},
		Upgrade:    Upgrade{OverBudget: "retry"},
	}
}
