package sdk

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
)

// limits are the host's size limits, learnt in Info. The plugin enforces
// them on its own results, so that a result the core would refuse, or the
// transport could not carry, fails that message alone with an error that
// says which limit, instead of breaking the stream (which would kill the
// process and every neighbour's batch with it). Zero means no limit.
//
// deferred says whether the host commits timers, cancels and spawns
// (InfoRequest.timers_and_spawns); one that does not would drop them.
type limits struct {
	state, message, response int
	deferred                 bool
}

func limitsOf(req *graftv1.InfoRequest) limits {
	return limits{state: clampInt(req.MaxStateSize), message: clampInt(req.MaxMessageSize), response: clampInt(req.MaxResponseSize),
		deferred: req.TimersAndSpawns}
}

func clampInt(v uint64) int {
	if v > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(v)
}

// transportSlack is room for a message's envelope (ids, names, tags) on
// top of its payload.
const transportSlack = 64 << 10

// callOptions are the gRPC limits of the plugin's calls to the host: a
// request and a reply each carry at most one message.
func (l limits) callOptions() []grpc.DialOption {
	if l.message == 0 {
		return nil
	}
	n := l.message + transportSlack
	return []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(n), grpc.MaxCallRecvMsgSize(n))}
}

// serverOptions lift gRPC's 4 MiB default on the plugin's own server: the
// host sizes what it sends by its limits and checks what it receives, and
// the plugin checks its results against the limits Info gave it.
func serverOptions(opts []grpc.ServerOption) []grpc.ServerOption {
	return append(opts, grpc.MaxRecvMsgSize(math.MaxInt32), grpc.MaxSendMsgSize(math.MaxInt32))
}

// checkEffects fails a message whose sends or reply are over the message
// limit.
func (l limits) checkEffects(sends []Send, reply []byte) error {
	if l.message == 0 {
		return nil
	}
	for _, s := range sends {
		if len(s.Payload) > l.message {
			return fmt.Errorf("the message sent to %q is %d bytes, over the %d-byte limit (limits.max_message_size)", s.To, len(s.Payload), l.message)
		}
	}
	if len(reply) > l.message {
		return fmt.Errorf("the reply is %d bytes, over the %d-byte limit (limits.max_message_size)", len(reply), l.message)
	}
	return nil
}

// checkDeferred fails a message that sets, cancels or spawns when the host
// would not commit it, and one whose timer payloads or spawn init payloads
// are over the message limit: each becomes a message of its own.
func (l limits) checkDeferred(timers []Timer, cancels []string, spawns []Spawn) error {
	if !l.deferred && len(timers)+len(cancels)+len(spawns) > 0 {
		return errors.New("this graft core does not support timers and spawns (it predates SDK v0.2.0): upgrade the core to use SendAfter, SendAt, CancelTimer and Spawn")
	}
	if l.message == 0 {
		return nil
	}
	for _, t := range timers {
		if len(t.Payload) > l.message {
			return fmt.Errorf("the message of timer %s to %q is %d bytes, over the %d-byte limit (limits.max_message_size)", t.ID, t.To, len(t.Payload), l.message)
		}
	}
	for _, s := range spawns {
		if len(s.Init) > l.message {
			return fmt.Errorf("the init payload of spawned actor %q is %d bytes, over the %d-byte limit (limits.max_message_size)", s.Name, len(s.Init), l.message)
		}
	}
	return nil
}

// checkState fails a message whose new state is over the state limit.
func (l limits) checkState(actor string, enc []byte) error {
	if l.state > 0 && len(enc) > l.state {
		return fmt.Errorf("the new state of actor %s is %d bytes, over the %d-byte limit (limits.max_state_size); nothing of this message is applied",
			actor, len(enc), l.state)
	}
	return nil
}

// fits says whether a response holding results of `used` bytes, one more
// result r and a final state of stateLen bytes stays within the response
// limit.
func (l limits) fits(used int, r *graftv1.MessageResult, stateLen int) (int, bool) {
	n := used + proto.Size(r) + 8
	return n, l.response == 0 || n+stateLen+transportSlack <= l.response
}
