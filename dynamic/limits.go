package dynamic

import (
	"google.golang.org/grpc"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
)

// Default size limits, used where Config leaves them zero. They match the
// core's defaults (limits.max_state_size, max_message_size,
// max_batch_bytes).
const (
	DefaultMaxStateSize   = 4 << 20
	DefaultMaxMessageSize = 1 << 20
	DefaultMaxBatchBytes  = 4 << 20
)

// transportSlack is room for envelopes (ids, names, tags, protobuf framing)
// on top of payloads and state.
const transportSlack = 1 << 20

// Limits are the sizes a module's traffic must fit. gRPC's own limits (4
// MiB by default, which let a 5 MiB state commit and then break every later
// batch of the actor) are derived from them, both ways, so that whatever
// graft accepts the transport carries and whatever the transport would
// refuse graft refuses first, per message, with an error naming the limit.
type Limits struct {
	// MaxStateSize bounds an actor's encoded state.
	MaxStateSize int
	// MaxMessageSize bounds a payload, reply or call request.
	MaxMessageSize int
	// MaxBatchBytes bounds the payload bytes of one batch (a single
	// message over it still travels alone).
	MaxBatchBytes int
}

func (l *Limits) defaults() {
	if l.MaxStateSize <= 0 {
		l.MaxStateSize = DefaultMaxStateSize
	}
	if l.MaxMessageSize <= 0 {
		l.MaxMessageSize = DefaultMaxMessageSize
	}
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = DefaultMaxBatchBytes
	}
}

// Transport is the largest Handle request or response: a state, a batch
// (or one message over the batch limit) and the envelopes.
func (l Limits) Transport() int {
	return l.MaxStateSize + max(l.MaxBatchBytes, l.MaxMessageSize) + transportSlack
}

// dialOptions are the host's gRPC limits towards the plugin.
func (l Limits) dialOptions() []grpc.DialOption {
	n := l.Transport()
	return []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(n), grpc.MaxCallSendMsgSize(n))}
}

// hostServerOptions are the limits of the call service the host offers: a
// call request and its reply each carry one message.
func (l Limits) hostServerOptions() []grpc.ServerOption {
	n := l.MaxMessageSize + transportSlack
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(n), grpc.MaxSendMsgSize(n)}
}

// info fills the limits the plugin enforces on its results.
func (l Limits) info(req *graftv1.InfoRequest) {
	req.MaxStateSize = uint64(l.MaxStateSize)
	req.MaxMessageSize = uint64(l.MaxMessageSize)
	req.MaxResponseSize = uint64(l.Transport())
}
