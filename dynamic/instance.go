package dynamic

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"

	"github.com/graft-host/graft/dynamic/internal/proc"
	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// ProtocolVersion is the behaviour protocol version this host speaks.
const ProtocolVersion = wire.ProtocolVersion

// Instance is one running generation of a plugin: one process, one go-plugin
// client, one Handle stream. When it ends (Stop, crash, hang) it stays
// ended; to restart, Start a new Instance.
type Instance struct {
	cfg    Config
	log    *slog.Logger
	info   Info
	client *plugin.Client
	proc   *proc.Process // set by go-plugin's RunnerFunc, read after the handshake
	// procRef publishes proc to Start while the handshake runs.
	procRef atomic.Pointer[proc.Process]
	out     *proc.Output
	dir     string // per-generation socket directory
	conn    *wire.Conn

	ctx    context.Context // lives as long as the module; cancels the stream
	cancel context.CancelFunc

	stream  graftv1.Behaviour_HandleClient
	sendq   chan *graftv1.HandleRequest
	nextID  atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan *graftv1.HandleResponse
	deadErr error // set once: why calls fail from now on
	dead    chan struct{}

	killClient func() // go-plugin's Client.Kill, once
	stopping   atomic.Bool
	killReason atomic.Pointer[string]
	teardownWG sync.WaitGroup
	torndown   chan struct{}
}

func (c *Config) defaults() {
	if c.StartTimeout <= 0 {
		c.StartTimeout = 10 * time.Second
	}
	if c.HandleTimeout <= 0 {
		c.HandleTimeout = 30 * time.Second
	}
	if c.CallTimeout <= 0 || c.CallTimeout > c.HandleTimeout {
		c.CallTimeout = c.HandleTimeout / 2
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 5 * time.Second
	}
	c.Limits.defaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.OutputRate <= 0 {
		c.OutputRate = 100
	}
	if c.OutputBurst <= 0 {
		c.OutputBurst = 200
	}
}

// Start starts the plugin at cfg.Path and returns once it has answered the
// handshake and Info, with the behaviour name checked. It is bounded by
// cfg.StartTimeout and ctx; on any failure the process is gone when Start
// returns, and the error (a *StartError) names the binary and the problem.
func Start(ctx context.Context, cfg Config) (*Instance, error) {
	cfg.defaults()
	if err := precheck(cfg.Path); err != nil {
		return nil, err
	}
	ctx, cancelStart := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancelStart()

	dir, err := os.MkdirTemp(cfg.SocketDir, "g")
	if err != nil {
		return nil, &StartError{Path: cfg.Path, Problem: "cannot create socket directory", Err: err}
	}
	// go-plugin nests two levels (~38 bytes) below it; unix socket paths
	// are limited to 107 bytes.
	if len(dir) > maxSocketDir {
		_ = os.RemoveAll(dir)
		return nil, &StartError{Path: cfg.Path, Problem: fmt.Sprintf("socket directory %s is too long for unix sockets (%d bytes, max %d); set Config.SocketDir to a shorter path", dir, len(dir), maxSocketDir)}
	}
	m := &Instance{
		cfg:      cfg,
		log:      cfg.Logger.With("plugin", cfg.Path),
		dir:      dir,
		pending:  map[uint64]chan *graftv1.HandleResponse{},
		dead:     make(chan struct{}),
		torndown: make(chan struct{}),
		sendq:    make(chan *graftv1.HandleRequest, 256),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.killClient = sync.OnceFunc(func() {
		if m.client != nil {
			m.client.Kill()
		}
	})
	m.out = proc.NewOutput(m.log, cfg.OutputRate, cfg.OutputBurst)

	// The sha256 pin is checked here rather than with go-plugin's
	// SecureConfig, which hashes the Cmd's path: with a RunnerFunc that
	// Cmd is only a spec with an empty path.
	if cfg.SHA256 != "" {
		sum, err := hex.DecodeString(cfg.SHA256)
		if err != nil || len(sum) != sha256.Size {
			m.abortStart()
			return nil, &StartError{Path: cfg.Path, Problem: fmt.Sprintf("invalid sha256 pin %q (want 64 hex digits)", cfg.SHA256), Kind: ErrBadBinary}
		}
		got := cfg.Pins.sha256Of(cfg.Path)
		if !strings.EqualFold(got, cfg.SHA256) {
			m.abortStart()
			return nil, &StartError{Path: cfg.Path, Problem: fmt.Sprintf("sha256 mismatch: pinned %s, file has %s", strings.ToLower(cfg.SHA256), got), Kind: ErrBadBinary}
		}
	}
	m.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake(wire.ProtocolVersion),
		VersionedPlugins: map[int]plugin.PluginSet{wire.ProtocolVersion: {wire.PluginName: &wire.BehaviourPlugin{}}},
		RunnerFunc: func(_ hclog.Logger, spec *exec.Cmd, _ string) (runner.Runner, error) {
			tree, treeEnv := m.tree() // see contain.go; env.go for the environment
			m.proc = proc.New(cfg.Path, pluginEnv(spec.Env, cfg.Env, treeEnv), m.out, tree)
			m.procRef.Store(m.proc)
			return m.proc, nil
		},
		StartTimeout:     cfg.StartTimeout,
		GRPCDialOptions:  cfg.Limits.dialOptions(),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
		SyncStdout:       m.out.Writer("stdout"),
		SyncStderr:       m.out.Writer("stderr"),
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: dir},
		SkipHostEnv:      true, // a clean environment: see pluginEnv
	})

	type started struct {
		err error
	}
	res := make(chan started, 1)
	go func() { res <- started{m.handshake(ctx)} }()
	var serr error
	select {
	case r := <-res:
		serr = r.err
	case <-ctx.Done():
		// Kill it; the handshake goroutine ends once the process is gone.
		// The process may be created concurrently, so keep killing until
		// the handshake gives up.
		tick := time.NewTicker(20 * time.Millisecond)
	wait:
		for {
			if p := m.procRef.Load(); p != nil {
				p.KillGroup()
			}
			select {
			case <-res:
				break wait
			case <-tick.C:
			}
		}
		tick.Stop()
		serr = ctx.Err()
	}
	if serr == nil {
		m.teardownWG.Add(2)
		go m.sender()
		go m.receiver()
		go m.supervise() //nolint:gosec // G118: supervision lives as long as the module, not as Start's context
		// m.log already carries behaviour, version and pid (see handshake).
		m.log.Info("plugin started", "schema", m.info.SchemaVersion)
		return m, nil
	}
	return nil, m.startFailed(serr)
}

const maxSocketDir = 66

// precheck catches what exec would report obscurely, naming the file.
func precheck(path string) error {
	if path == "" {
		return &StartError{Path: `""`, Problem: "no plugin path given", Kind: ErrBadBinary}
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return &StartError{Path: path, Problem: "cannot stat the binary", Kind: ErrBadBinary, Err: err}
	case st.IsDir():
		return &StartError{Path: path, Problem: "is a directory, not a plugin binary", Kind: ErrBadBinary}
	case st.Mode()&0o111 == 0:
		return &StartError{Path: path, Problem: fmt.Sprintf("is not executable (mode %v); chmod +x it", st.Mode().Perm()), Kind: ErrBadBinary}
	case st.Size() == 0:
		return &StartError{Path: path, Problem: "is an empty file", Kind: ErrBadBinary}
	}
	return nil
}

// handshake runs go-plugin's start, dispenses the behaviour, asks Info and
// opens the Handle stream.
func (m *Instance) handshake(ctx context.Context) error {
	rpc, err := m.client.Client()
	if err != nil {
		return err
	}
	raw, err := rpc.Dispense(wire.PluginName)
	if err != nil {
		return err
	}
	m.conn = raw.(*wire.Conn)
	var brokerID uint32
	if m.cfg.Caller != nil {
		if brokerID, err = m.serveHost(); err != nil {
			return err
		}
	}
	ireq := &graftv1.InfoRequest{HostBrokerId: brokerID, TimersAndSpawns: true}
	m.cfg.Limits.info(ireq)
	info, err := m.conn.Behaviour.Info(ctx, ireq)
	if err != nil {
		return fmt.Errorf("info: %w", err)
	}
	m.info = Info{
		Behaviour: info.Behaviour, CodeVersion: info.CodeVersion, SchemaVersion: info.SchemaVersion,
		MigratesFrom: info.MigratesFrom, MigratesTo: info.MigratesTo, Protocol: m.client.NegotiatedVersion(),
		InitInHandle: info.InitInHandle,
	}
	if m.cfg.Behaviour != "" && info.Behaviour != m.cfg.Behaviour {
		return errWrongName
	}
	named := m.cfg.Logger.With("behaviour", info.Behaviour, "version", info.CodeVersion)
	m.out.SetLogger(named) // output records carry the pid themselves
	m.log = named.With("pid", m.proc.Pid())
	m.stream, err = m.conn.Behaviour.Handle(m.ctx)
	if err != nil {
		return fmt.Errorf("open handle stream: %w", err)
	}
	return nil
}

var errWrongName = errors.New("wrong behaviour name")

// startFailed cleans up a failed start and explains it.
func (m *Instance) startFailed(err error) error {
	se := &StartError{Path: m.cfg.Path, Err: err}
	exited := false
	if m.proc != nil && m.proc.Pid() != 0 {
		// Give a plugin that is dying anyway a moment to finish, so its
		// exit status and last words are part of the report.
		t := time.NewTimer(300 * time.Millisecond)
		select {
		case <-m.proc.Exited():
			exited = true
		case <-t.C:
		}
		t.Stop()
		if exited {
			ex := m.proc.Exit()
			se.Exit = &ex
		}
	}
	m.abortStart()
	se.Stderr = m.out.Head()
	first, sawLine := "", false
	if m.proc != nil {
		first, sawLine = m.proc.FirstLine()
	}
	msg := err.Error()
	switch {
	case m.proc == nil || m.proc.Pid() == 0:
		se.Kind = ErrBadBinary
		se.Problem = "cannot execute (truncated, corrupt, or built for another system?)"
	case errors.Is(err, errWrongName):
		se.Kind, se.Err = ErrBadBinary, nil
		se.Problem = fmt.Sprintf("behaviour name is %q, expected %q (version %s)", m.info.Behaviour, m.cfg.Behaviour, m.info.CodeVersion)
	case strings.Contains(se.Stderr, "This binary is a plugin. These are not meant to be executed directly"):
		se.Kind, se.Err = ErrBadBinary, nil
		se.Problem = "wrong magic cookie: it is a go-plugin plugin but not for graft's handshake"
	case strings.Contains(strings.ToLower(msg), "incompatible api version with plugin"):
		se.Kind = ErrBadBinary
		se.Problem = fmt.Sprintf("unsupported protocol version: graft speaks behaviour protocol %d", wire.ProtocolVersion)
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "timeout while waiting for plugin to start"):
		se.Kind = ErrStartTimeout
		se.Problem = fmt.Sprintf("no handshake within the start timeout (%s, or the caller's deadline if sooner)", m.cfg.StartTimeout)
		if !sawLine {
			se.Problem += " (nothing written on stdout: not a graft plugin, or stuck before serving?)"
		}
	case errors.Is(err, context.Canceled):
		se.Problem = "start cancelled"
	case sawLine && strings.Contains(msg, "Unrecognized remote plugin message"):
		se.Kind, se.Err = ErrBadBinary, nil
		se.Problem = fmt.Sprintf("not a graft plugin: first line on stdout is %q, not a go-plugin handshake", truncate(first, 200))
	case !sawLine && se.Exit != nil:
		se.Kind, se.Err = ErrBadBinary, nil
		// A plugin that dies in main before Serve (a panic, log.Fatal,
		// os.Exit(1)) is a crash, not a foreign program: Error quotes the
		// exit status and the first lines of its stderr, which say why.
		switch wroteStderr := strings.TrimSpace(se.Stderr) != ""; {
		case se.Exit.Signal != 0:
			se.Problem = "crashed before the handshake (truncated or corrupt binary?)"
		case se.Exit.Code != 0 && wroteStderr:
			se.Problem = "crashed at start: it exited before the handshake"
		case se.Exit.Code != 0:
			se.Problem = "crashed at start: it exited before the handshake, writing nothing on stdout or stderr"
		case wroteStderr:
			se.Problem = "it exited before the handshake without serving"
		default:
			se.Problem = "not a graft plugin: it exited before the handshake, writing nothing on stdout"
		}
	case !sawLine:
		se.Kind = ErrBadBinary
		se.Problem = "not a graft plugin: no handshake on stdout"
	default:
		se.Problem = "handshake failed"
	}
	return se
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// abortStart removes every trace of a failed start, bounded: the process
// group is killed, the output pipes closed, the go-plugin client released.
func (m *Instance) abortStart() {
	m.cancel()
	if m.proc != nil && m.proc.Pid() != 0 {
		m.proc.KillGroup()
		<-m.proc.Exited() // SIGKILL is prompt; the reaper closes this
		m.proc.CloseOutput()
		_ = m.proc.WaitRelays(context.Background())
	}
	m.killClient() // process gone: returns promptly, frees go-plugin's goroutines
	_ = os.RemoveAll(m.dir)
}

// serveHost offers the Caller to the plugin through the broker. The
// listener is opened (and its address sent to the plugin) before Info names
// its id, so the plugin's dial in Info finds it at once; it then serves for
// the module's whole life, so the plugin's connection can reconnect to it.
func (m *Instance) serveHost() (uint32, error) {
	id := m.conn.Broker.NextId()
	ln, err := m.conn.Broker.Accept(id)
	if err != nil {
		return 0, fmt.Errorf("offer the call service: %w", err)
	}
	srv := grpc.NewServer(m.cfg.Limits.hostServerOptions()...)
	graftv1.RegisterHostServer(srv, &hostServer{caller: m.cfg.Caller, timeout: m.cfg.CallTimeout})
	m.teardownWG.Add(2)
	go func() {
		defer m.teardownWG.Done()
		_ = srv.Serve(ln) // returns once Stop below closes the listener
	}()
	go func() {
		defer m.teardownWG.Done()
		<-m.ctx.Done()
		srv.Stop()
	}()
	return id, nil
}

type hostServer struct {
	graftv1.UnimplementedHostServer
	caller  Caller
	timeout time.Duration
}

func (h *hostServer) Call(ctx context.Context, req *graftv1.CallRequest) (*graftv1.CallResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	reply, err := h.caller.Call(ctx, CallRequest{From: req.From, To: req.To, Payload: req.Payload, ID: req.Id, CallerChain: req.CallerChain, TraceParent: req.TraceParent})
	if err != nil {
		kind, text := callErrorKind(err)
		if text == "" {
			text = errCallUnspecified.Error()
		}
		return &graftv1.CallResponse{Error: text, Kind: kind}, nil
	}
	return &graftv1.CallResponse{Reply: reply}, nil
}
