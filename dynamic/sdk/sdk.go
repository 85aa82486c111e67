package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/graft-host/graft/dynamic/sdk/wire"
	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
)

// Behaviour is what a plugin author implements. S is the actor's state
// type; the SDK decodes it before and encodes it after each call, so the
// author never touches bytes or schema versions. Both methods must be pure
// functions of their inputs apart from what they do through ctx: the core
// owns the state and may replay a message after a crash.
type Behaviour[S any] interface {
	// Init returns the fresh state of the actor ctx.Actor().
	Init(ctx *Context) (S, error)
	// Handle applies msg to state and returns the new state. An error (or
	// a panic) fails this message alone: its sends and reply are dropped
	// and the state stays as it was before it.
	Handle(ctx *Context, state S, msg Message) (S, error)
}

// Funcs adapts two plain functions to Behaviour, for behaviours too small to
// deserve a type. A nil InitFunc starts from the zero S.
type Funcs[S any] struct {
	InitFunc   func(ctx *Context) (S, error)
	HandleFunc func(ctx *Context, state S, msg Message) (S, error)
}

// Init calls f.InitFunc, or returns the zero S.
func (f Funcs[S]) Init(ctx *Context) (S, error) {
	if f.InitFunc == nil {
		var zero S
		return zero, nil
	}
	return f.InitFunc(ctx)
}

// Handle calls f.HandleFunc.
func (f Funcs[S]) Handle(ctx *Context, state S, msg Message) (S, error) {
	return f.HandleFunc(ctx, state, msg)
}

// Message is one message delivered to an actor.
type Message struct {
	Seq       uint64   // position in the actor's mailbox
	ID        string   // idempotency id, stable across redeliveries
	Sender    string   // sending actor, "" when sent from outside
	Payload   []byte   // the message body, encoded as the sender chose
	Attempt   uint32   // delivery attempt, 1 for the first
	CallChain []string // for a synchronous call: the calling actors, outermost first
}

// ErrNoHost is returned by Context.Call when the host offers no callback
// service (e.g. an older core, or Init/Migrate where calls make no sense).
var ErrNoHost = errors.New("github.com/graft-host/graft/sdk: the host offers no call service")

// Context is passed to Init and Handle. It is a context.Context (for Init,
// the host's call deadline; for Handle, cancelled when the host closes the
// stream, i.e. stops or abandons the module) and collects the handler's effects:
// sends and the reply are buffered and take effect only if the handler
// succeeds, committed by the core together with the new state.
type Context struct {
	context.Context
	actor    string
	msg      *Message
	host     *hostLink
	out      []*graftv1.Outgoing
	reply    []byte
	hasReply bool
	calls    int
}

// Actor is the name of the actor being initialised or handled.
func (c *Context) Actor() string { return c.actor }

// Send queues payload for actor `to`. It is delivered after the current
// message commits, and dropped if the handler fails.
func (c *Context) Send(to string, payload []byte) {
	c.out = append(c.out, &graftv1.Outgoing{To: to, Payload: payload})
}

// Reply sets the reply to the current message (the answer to a call); the
// last Reply wins.
func (c *Context) Reply(payload []byte) {
	c.reply, c.hasReply = payload, true
}

// Call sends payload to actor `to` and waits for its reply. The call's id
// is derived from the current message id and the call's position in the
// handler, so a redelivered message re-asks the same question and gets the
// answer the core stored the first time.
func (c *Context) Call(to string, payload []byte) ([]byte, error) {
	if c.msg == nil {
		return nil, errors.New("github.com/graft-host/graft/sdk: Call is only allowed in Handle")
	}
	hc := c.host.client()
	if hc == nil {
		return nil, ErrNoHost
	}
	c.calls++
	chain := append(append([]string(nil), c.msg.CallChain...), c.actor)
	resp, err := hc.Call(c, &graftv1.CallRequest{
		From: c.actor, To: to, Payload: payload,
		Id:          callID(c.actor, c.msg, c.calls),
		CallerChain: chain,
	})
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", to, err)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("call %s: %s", to, resp.Error)
	}
	return resp.Reply, nil
}

// callID derives a call's id from the calling actor, the calling message
// and the call's position in the handler: stable when the message is
// redelivered (so the callee's mailbox deduplicates the re-asked call and
// answers with its stored reply), and unique across callers (two actors
// handling messages with the same client-chosen id must not share an
// answer). A message without an id is named by its sequence number, which
// is just as stable.
func callID(actor string, msg *Message, n int) string {
	key := msg.ID
	if key == "" {
		key = "#" + strconv.FormatUint(msg.Seq, 10)
	}
	return actor + "/" + key + "/call/" + strconv.Itoa(n)
}

// Module describes a behaviour plugin for Serve.
type Module[S any] struct {
	// Name is the behaviour name; the core refuses a plugin whose name is
	// not the one it was configured with.
	Name string
	// Version is the code version, free form, shown in logs and status.
	Version string
	// Codec encodes S at the current schema version and migrates older
	// (or, for rollback, newer) encodings. Nil means JSONCodec[S](1).
	Codec *Codec[S]
	// Behaviour is the author's code.
	Behaviour Behaviour[S]
}

// Serve runs the plugin: it answers the go-plugin handshake on stdout and
// serves the behaviour until the host asks it to stop or goes away. Call it
// once from main; it does not return. When not started by a graft host
// (no magic cookie) it prints an explanation and exits with status 1.
func Serve[S any](m Module[S]) {
	ServeVersion(m, wire.ProtocolVersion)
}

// ServeVersion is Serve speaking protocol version v. It exists for testing
// the host's handling of an unsupported version; authors call Serve.
func ServeVersion[S any](m Module[S], v int) {
	serve(m, wire.Handshake(uint(v)), v)
}

func serve[S any](m Module[S], hs plugin.HandshakeConfig, v int) {
	if m.Codec == nil {
		m.Codec = JSONCodec[S](1)
	}
	if m.Name == "" || m.Behaviour == nil {
		fmt.Fprintln(os.Stderr, "github.com/graft-host/graft/sdk: Serve needs a Module with Name and Behaviour")
		os.Exit(2)
	}
	// go-plugin replaces os.Stderr by a pipe forwarded over gRPC; keep the
	// real one for the SDK's own diagnostics (panic stacks).
	stderr := os.Stderr
	watchHost(stderr)
	srv := &server[S]{m: m, stderr: stderr, host: &hostLink{}}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: hs,
		VersionedPlugins: map[int]plugin.PluginSet{
			v: {wire.PluginName: &wire.BehaviourPlugin{
				NewServer: func(b *plugin.GRPCBroker) graftv1.BehaviourServer {
					srv.host.broker.Store(b)
					return srv
				},
			}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "graft-plugin", Level: hclog.Warn, Output: stderr,
		}),
	})
	os.Exit(0)
}

// watchHost makes the plugin exit at once when the host process is gone,
// however it died: the host holds the only write end of a pipe whose read
// end we inherited, so the kernel closes it when the host dies and our read
// returns EOF. (The host also sets Pdeathsig, but that fires on the exit of
// the forking OS thread, not the process, and is Linux-only.)
func watchHost(stderr *os.File) {
	s := os.Getenv(wire.EnvLivenessFD)
	if s == "" {
		return
	}
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 3 {
		fmt.Fprintf(stderr, "github.com/graft-host/graft/sdk: bad %s=%q\n", wire.EnvLivenessFD, s)
		os.Exit(2)
	}
	f := os.NewFile(uintptr(fd), "graft-liveness")
	go func() {
		var b [1]byte
		for {
			if _, err := f.Read(b[:]); err != nil {
				fmt.Fprintln(stderr, "github.com/graft-host/graft/sdk: host is gone (liveness pipe closed), exiting")
				os.Exit(3)
			}
		}
	}()
}

// hostLink is the plugin's connection to the host's callback service. It is
// dialled once, through the broker, when Info names the service; the gRPC
// connection it holds reconnects by itself to the host's listener, which
// lives as long as the module.
type hostLink struct {
	broker atomic.Pointer[plugin.GRPCBroker]
	hc     atomic.Pointer[graftv1.HostClient]
	dialMu sync.Mutex
}

// connect dials the host's call service at broker id `id`, once.
func (h *hostLink) connect(id uint32) error {
	h.dialMu.Lock()
	defer h.dialMu.Unlock()
	if h.hc.Load() != nil {
		return nil
	}
	b := h.broker.Load()
	if b == nil {
		return errors.New("no go-plugin broker")
	}
	conn, err := b.Dial(id)
	if err != nil {
		return fmt.Errorf("dial broker id %d: %w", id, err)
	}
	hc := graftv1.NewHostClient(conn)
	h.hc.Store(&hc)
	return nil
}

// client returns the host's call service, or nil when the host offers none.
func (h *hostLink) client() graftv1.HostClient {
	if h == nil {
		return nil
	}
	if p := h.hc.Load(); p != nil {
		return *p
	}
	return nil
}
