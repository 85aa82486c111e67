package sdk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
	"github.com/graft-host/graft/dynamic/sdk/wire"
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
	TimerID   string   // for a message a timer delivered: the id SendAfter or SendAt returned; "" otherwise
	// TraceParent is the W3C traceparent of the core's span for handling
	// this message when the core traces (OpenTelemetry), "" otherwise. Calls
	// the handler makes carry it, so they continue the trace; a behaviour
	// that traces its own work can use it as the parent of its spans.
	TraceParent string
}

// ErrNoHost is returned by Context.Call when the Context has no way to
// reach other actors: Apply or sdktest was given no caller (in a unit
// test, use sdktest's Stub to answer calls). A plugin run by a graft core
// always has one; outside Handle, Call fails with its own error instead.
var ErrNoHost = errors.New("graft/sdk: no call service: Call needs a host (or, in tests, sdktest's Stub)")

// Context is passed to Init and Handle. It is a context.Context (for Init,
// the host's call deadline; for Handle, cancelled when the host closes the
// stream, i.e. stops or abandons the module) and collects the handler's effects:
// sends, the reply, timers set and cancelled and actors spawned are buffered
// and take effect only if the handler succeeds, committed by the core
// together with the new state.
type Context struct {
	context.Context
	actor    string
	msg      *Message
	caller   Caller
	out      []Send
	reply    []byte
	hasReply bool
	calls    int
	timers   []Timer  // set, in order (see timers.go)
	timerN   int      // timers set so far, cancelled ones included: the next id's n
	cancels  []string // ids to cancel, each once
	spawns   []Spawn
	misuse   []string // Handle-only calls made in Init
}

// Caller answers the calls a handler makes with Context.Call. In a plugin
// it is the core, reached over gRPC; in a test it is a stub (see sdktest).
// Its errors are those Context.Call documents.
type Caller interface {
	Call(ctx context.Context, req CallRequest) ([]byte, error)
}

// CallRequest is one Context.Call, as the Caller sees it.
type CallRequest struct {
	From, To string
	Payload  []byte
	// ID is derived from the calling message and the call's position in
	// the handler: stable when the message is redelivered.
	ID string
	// Chain lists the calling actors, outermost first, ending with From.
	Chain []string
	// TraceParent is the calling message's Message.TraceParent.
	TraceParent string
}

// Send is a message a handler sent with Context.Send.
type Send struct {
	To      string
	Payload []byte
}

// Actor is the name of the actor being initialised or handled.
func (c *Context) Actor() string { return c.actor }

// Message is the message being handled (the zero Message in Init), for
// handlers such as Text and JSON ones that are not handed it.
func (c *Context) Message() Message {
	if c.msg == nil {
		return Message{}
	}
	return *c.msg
}

// Sender is the sending actor of the message being handled: "" for a
// message from outside (graft send, graft call) and in Init.
func (c *Context) Sender() string { return c.Message().Sender }

// Send queues payload for actor `to`. It is delivered after the current
// message commits, and dropped if the handler fails.
func (c *Context) Send(to string, payload []byte) {
	c.out = append(c.out, Send{To: to, Payload: payload})
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
//
// A failed call returns a *RefusedError when the called handler refused the
// request (sdk.Terminal), or a *CallError whose kind errors.Is matches:
// ErrCallCycle, ErrUnknownActor, ErrCallTimeout, ErrTooLarge,
// ErrDeadLettered, ErrNoReply. ErrNoHost means there is no call service
// (outside Handle, or a host without one).
func (c *Context) Call(to string, payload []byte) ([]byte, error) {
	if c.msg == nil {
		return nil, errors.New("graft/sdk: Call is only allowed in Handle")
	}
	if c.caller == nil {
		return nil, ErrNoHost
	}
	c.calls++
	chain := append(append([]string(nil), c.msg.CallChain...), c.actor)
	return c.caller.Call(c, CallRequest{
		From: c.actor, To: to, Payload: payload,
		ID: callID(c.actor, c.msg, c.calls), Chain: chain, TraceParent: c.msg.TraceParent,
	})
}

// callID derives a call's id from the calling actor, the calling message
// and the call's position in the handler: stable when the message is
// redelivered (so the callee's mailbox deduplicates the re-asked call and
// answers with its stored reply), and unique across callers (two actors
// handling messages with the same client-chosen id must not share an
// answer). A message without an id is named by its sequence number, which
// is just as stable.
//
// Ids of calls made while handling a call grow with the depth of the call
// chain, so a key over maxCallKey bytes is replaced by its sha256: the id
// stays stable and unique, and bounded whatever the depth.
func callID(actor string, msg *Message, n int) string {
	key := msg.ID
	if key == "" {
		key = "#" + strconv.FormatUint(msg.Seq, 10)
	}
	if len(key) > maxCallKey {
		sum := sha256.Sum256([]byte(key))
		key = "sha256:" + hex.EncodeToString(sum[:])
	}
	return actor + "/" + key + "/call/" + strconv.Itoa(n)
}

// maxCallKey bounds the calling message's part of a derived call id.
const maxCallKey = 128

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
	if os.Getenv(hs.MagicCookieKey) != hs.MagicCookieValue {
		explainByHand(m.Name, m.Version, m.Codec.Version())
		os.Exit(1)
	}
	// go-plugin replaces os.Stderr by a pipe forwarded over gRPC; keep the
	// real one for the SDK's own diagnostics (panic stacks).
	stderr := os.Stderr
	watchHost(stderr)
	srv := &server[S]{m: m, stdout: os.Stdout, stderr: stderr, host: &hostLink{}}
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
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return plugin.DefaultGRPCServer(serverOptions(opts))
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "graft-plugin", Level: hclog.Warn, Output: stderr,
		}),
	})
	os.Exit(0)
}

// explainByHand tells someone who ran the plugin by hand what it is and how
// it is meant to run (instead of go-plugin's generic text).
func explainByHand(name, version string, schema uint32) {
	fmt.Fprintf(os.Stderr, `This is the graft behaviour %q, version %s (state schema %d).
It is a plugin: a graft core starts it, it does not run on its own.
To run it, name this binary in a graft config and start a core:

  behaviours:
    %s: {binary: %s}
  actors:
    - {name: %s1, behaviour: %s}

  graft run --config graft.yaml
  graft call %s1 PAYLOAD --config graft.yaml
`, name, version, schema, name, os.Args[0], name, name, name)
}

// watchHost ends the plugin, and everything it spawned, as soon as the host
// is gone, however it died: the host holds the only write end of a pipe
// whose read end we inherited, so the kernel closes it when the host dies
// and our read returns EOF; and the host sets Pdeathsig to SIGTERM (which
// fires on the exit of the forking OS thread, and is Linux-only). On either
// the plugin kills its cgroup and its process group, itself included,
// rather than exiting alone: a grandchild must not outlive the host (see
// endTree).
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
	var once sync.Once // the two watchers end the tree once
	gone := func(why string) { once.Do(func() { endTree(stderr, why) }) }
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		gone("SIGTERM (the host died, or asks the plugin to end)")
	}()
	go func() {
		var b [1]byte
		for {
			if _, err := f.Read(b[:]); err != nil {
				gone("host is gone (liveness pipe closed)")
			}
		}
	}()
}

// hostLink is the plugin's connection to the host's callback service. It is
// dialled once, through the broker, when Info names the service; the gRPC
// connection it holds reconnects by itself to the host's listener, which
// lives as long as the module.
type hostLink struct {
	broker     atomic.Pointer[plugin.GRPCBroker]
	hc         atomic.Pointer[graftv1.HostClient]
	maxMessage atomic.Int64 // the host's message limit, 0 for none
	dialMu     sync.Mutex
}

// connect dials the host's call service at broker id `id`, once.
func (h *hostLink) connect(id uint32, opts ...grpc.DialOption) error {
	h.dialMu.Lock()
	defer h.dialMu.Unlock()
	if h.hc.Load() != nil {
		return nil
	}
	b := h.broker.Load()
	if b == nil {
		return errors.New("no go-plugin broker")
	}
	// No idle timeout: gRPC would otherwise put the connection to sleep
	// after 30 idle minutes and redial on the next call, a window that only
	// a module idle for half an hour would ever cross.
	conn, err := b.DialWithOptions(id, append(opts, grpc.WithIdleTimeout(0))...)
	if err != nil {
		return fmt.Errorf("dial broker id %d: %w", id, err)
	}
	hc := graftv1.NewHostClient(conn)
	h.hc.Store(&hc)
	return nil
}

// caller returns the host's call service as a Caller, or nil when the host
// offers none.
func (h *hostLink) caller() Caller {
	if h == nil {
		return nil
	}
	if p := h.hc.Load(); p != nil {
		return grpcCaller{hc: *p, max: int(h.maxMessage.Load())}
	}
	return nil
}

// grpcCaller is the Caller of a plugin: the core's Host service.
type grpcCaller struct {
	hc  graftv1.HostClient
	max int // message limit, 0 for none
}

func (g grpcCaller) Call(ctx context.Context, req CallRequest) ([]byte, error) {
	if g.max > 0 && len(req.Payload) > g.max {
		return nil, &CallError{To: req.To, Kind: ErrTooLarge,
			Detail: fmt.Sprintf("the request is %d bytes, over the %d-byte limit (limits.max_message_size)", len(req.Payload), g.max)}
	}
	resp, err := g.hc.Call(ctx, &graftv1.CallRequest{
		From: req.From, To: req.To, Payload: req.Payload, Id: req.ID, CallerChain: req.Chain, TraceParent: req.TraceParent,
	})
	if err != nil {
		return nil, &CallError{To: req.To, Detail: "the host's call service failed: " + err.Error()}
	}
	if resp.Error != "" || resp.Kind != graftv1.CallErrorKind_CALL_ERROR_KIND_UNSPECIFIED {
		return nil, callError(req.To, resp.Kind, resp.Error)
	}
	return resp.Reply, nil
}
