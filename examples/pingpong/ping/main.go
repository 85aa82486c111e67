// Command ping is the "ping" behaviour of graft's ping-pong example: it
// launches balls that bounce between a ping actor and the actor "pong", and
// it keeps, in its state, the proof that no bounce was lost or duplicated
// while pong is upgraded and rolled back under it.
//
// It shows how a behaviour is written against the public SDK alone: a typed
// state, handlers routed by message kind that are pure functions of (state,
// message), effects (Send, Reply) that graft commits together with the new
// state, and refusals (sdk.Refuse) for requests it will not take.
//
// # Messages
//
// A ping actor understands:
//
//	start N            from a client: launch N new balls (1 <= N <= 1000)
//	stop               from a client: stop hitting; balls in flight still land
//	stats              from a client (a call): reply the state as JSON
//	<tag> <ball> <n>   from pong, e.g. "pong b3 17": ball b3's 17th bounce
//
// For each ball, ping sends "ping <ball> <n>" to the actor "pong"; pong
// sends "<tag> <ball> <n>" back to the sender with the same n, where <tag>
// says which pong version answered ("pong" for v1, "pong/v2" for v2); ping
// then sends "ping <ball> <n+1>". Each ball has exactly one message in flight,
// so the bounce that comes back must be exactly the last one seen plus one:
// anything else is counted as duplicated or lost in the state, never hidden.
package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/graft-host/graft/dynamic/sdk"
)

// pongActor is the actor every ball is sent to.
const pongActor = "pong"

// maxBalls bounds one "start N", so a typo cannot flood the store.
const maxBalls = 1000

// ball is one ball's record: the bounce last sent and the bounce last
// received. Sent == Got+1 while the ball is in flight, Sent == Got once it
// has landed after a stop.
type ball struct {
	Sent int    `json:"sent"` // n of the last "ping <ball> <n>" sent
	Got  int    `json:"got"`  // n of the last reply received
	From string `json:"from"` // tag of the last reply ("pong", "pong/v2")
}

// state is a ping actor's state, schema 1.
type state struct {
	Balls      map[string]ball `json:"balls"`      // by ball name: b1, b2, ...
	Pongs      int             `json:"pongs"`      // replies received in order
	ByTag      map[string]int  `json:"by_tag"`     // replies by pong version tag
	Duplicated int             `json:"duplicated"` // replies with n <= last seen
	Lost       int             `json:"lost"`       // bounces skipped (n > last seen + 1)
	Stopped    bool            `json:"stopped"`    // a "stop" arrived: balls land, no new hits
}

func main() { sdk.Run("ping", "1.0.0", behaviour()) }

// behaviour routes ping's messages: commands from a client, and pong's
// replies, whose kind is the tag of the pong version that answered.
func behaviour() *sdk.Router[state] {
	return sdk.Routes[state]().
		WithInit(func(*sdk.Context) (state, error) {
			return state{Balls: map[string]ball{}, ByTag: map[string]int{}}, nil
		}).
		On("start", sdk.Text(start)).
		On("stop", func(_ *sdk.Context, s state, _ sdk.Message) (state, error) {
			s.Stopped = true
			return s, nil
		}).
		On("stats", func(ctx *sdk.Context, s state, _ sdk.Message) (state, error) {
			b, err := json.Marshal(s)
			if err != nil {
				return s, fmt.Errorf("ping %s: encode stats: %w", ctx.Actor(), err)
			}
			ctx.Reply(b)
			return s, nil
		}).
		Otherwise(reply)
}

// start launches N new balls.
func start(ctx *sdk.Context, s state, args string) (state, error) {
	n, err := strconv.Atoi(args)
	if err != nil || n < 1 || n > maxBalls {
		return s, sdk.Refuse("ping %s: \"start %s\": want start N with 1 <= N <= %d", ctx.Actor(), args, maxBalls)
	}
	s = withMaps(s)
	s.Stopped = false
	for range n {
		name := "b" + strconv.Itoa(len(s.Balls)+1)
		s.Balls[name] = ball{Sent: 1}
		ctx.Send(pongActor, fmt.Appendf(nil, "ping %s 1", name))
	}
	return s, nil
}

// reply handles pong's "<tag> <ball> <n>"; anything else is refused.
func reply(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
	words := strings.Fields(string(m.Payload))
	if len(words) != 3 || !strings.HasPrefix(words[0], "pong") {
		return s, sdk.Refuse("ping %s: unknown message %q (want \"start N\", \"stop\", \"stats\" or a pong reply)", ctx.Actor(), m.Payload)
	}
	return bounce(ctx, withMaps(s), words[0], words[1], words[2])
}

// withMaps makes sure the state's maps exist (a state decoded from "{}"
// has none).
func withMaps(s state) state {
	if s.Balls == nil {
		s.Balls = map[string]ball{}
	}
	if s.ByTag == nil {
		s.ByTag = map[string]int{}
	}
	return s
}

// bounce records pong's reply "<tag> <name> <n>" and hits the ball again.
func bounce(ctx *sdk.Context, s state, tag, name, num string) (state, error) {
	n, err := strconv.Atoi(num)
	if err != nil {
		return s, sdk.Refuse("ping %s: reply %q for ball %s: bad bounce number: %v", ctx.Actor(), tag, name, err)
	}
	b, ok := s.Balls[name]
	if !ok {
		return s, sdk.Refuse("ping %s: reply for unknown ball %q", ctx.Actor(), name)
	}
	switch {
	case n <= b.Got: // seen already: a duplicate must not start a second ball
		s.Duplicated++
		return s, nil
	case n > b.Got+1: // bounces between were never seen
		s.Lost += n - b.Got - 1
	}
	b.Got, b.From = n, tag
	s.Pongs++
	s.ByTag[tag]++
	if !s.Stopped {
		b.Sent = n + 1
		ctx.Send(pongActor, fmt.Appendf(nil, "ping %s %d", name, b.Sent))
	}
	s.Balls[name] = b
	return s, nil
}
