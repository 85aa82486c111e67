// Command ctm is the chaos harness's timer and spawn behaviour "ctm"
// (virtual: it owns every name ctm/KEY). The harness drives it with calls
// and reads back what it recorded in its committed state:
//
//	arm TAG TO after MS GAP LEFT  SendAfter(MS ms, TO, "fire TAG 0 GAP LEFT")
//	arm TAG TO at NANOS GAP LEFT  SendAt(NANOS since the Unix epoch, TO, ...)
//	                              both reply {"id": timer id, "now": the
//	                              handler's clock in Unix ns}
//	cancel ID                     CancelTimer(ID)
//	spawn NAME                    Spawn(NAME, "ctm", "init NAME")
//	init NAME                     (a spawned actor's first message) recorded
//	fire TAG N GAP LEFT           (a timer's message) recorded with its
//	                              TimerID, sender and arrival time; with LEFT
//	                              > 0 it re-arms itself: SendAfter(GAP ms,
//	                              itself, "fire TAG N+1 GAP LEFT-1"), the
//	                              periodic pattern
//
// Each fire is recorded once per committed application, so a timer that
// fired twice shows as two entries, and the arrival time (taken before the
// commit, after the timer came due) tells a timer that fired early.
package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/graft-host/graft/dynamic/sdk"
)

// fire is one timer message the actor applied.
type fire struct {
	Tag  string `json:"tag"`
	N    int    `json:"n"`
	ID   string `json:"id"`
	From string `json:"from"`
	At   int64  `json:"at"`
}

type state struct {
	Fired []fire   `json:"fired"`
	Inits []string `json:"inits"`
}

func main() {
	sdk.Serve(sdk.Module[state]{
		Name:      "ctm",
		Version:   "1.0.0",
		Behaviour: sdk.Funcs[state]{HandleFunc: handle},
	})
}

func handle(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
	f := strings.Fields(string(m.Payload))
	if len(f) == 0 {
		return s, sdk.Terminal(fmt.Errorf("ctm: empty command"))
	}
	switch {
	case f[0] == "arm" && len(f) == 7:
		return s, arm(ctx, f[1:])
	case f[0] == "cancel" && len(f) == 2:
		ctx.CancelTimer(f[1])
		ctx.Reply([]byte("ok"))
		return s, nil
	case f[0] == "spawn" && len(f) == 2:
		ctx.Spawn(f[1], "ctm", []byte("init "+f[1]))
		ctx.Reply([]byte("ok"))
		return s, nil
	case f[0] == "init" && len(f) == 2:
		s.Inits = append(s.Inits, f[1])
		return s, nil
	case f[0] == "fire" && len(f) == 5:
		return onFire(ctx, s, m, f[1:])
	}
	return s, sdk.Terminal(fmt.Errorf("ctm: unknown command %q", m.Payload))
}

// arm sets one timer: f is TAG TO after|at WHEN GAP LEFT.
func arm(ctx *sdk.Context, f []string) error {
	tag, to, mode := f[0], f[1], f[2]
	when, err1 := strconv.ParseInt(f[3], 10, 64)
	_, err2 := strconv.Atoi(f[4])
	_, err3 := strconv.Atoi(f[5])
	if err1 != nil || err2 != nil || err3 != nil {
		return sdk.Terminal(fmt.Errorf("ctm: bad arm %q", strings.Join(f, " ")))
	}
	now := time.Now().UnixNano()
	payload := []byte(fmt.Sprintf("fire %s 0 %s %s", tag, f[4], f[5]))
	var id string
	switch mode {
	case "after":
		id = ctx.SendAfter(time.Duration(when)*time.Millisecond, to, payload)
	case "at":
		id = ctx.SendAt(time.Unix(0, when), to, payload)
	default:
		return sdk.Terminal(fmt.Errorf("ctm: arm mode %q: want after or at", mode))
	}
	reply, err := json.Marshal(map[string]any{"id": id, "now": now})
	if err != nil {
		return fmt.Errorf("ctm: encode the reply: %w", err)
	}
	ctx.Reply(reply)
	return nil
}

// onFire records a timer's message and re-arms a chain: f is TAG N GAP LEFT.
func onFire(ctx *sdk.Context, s state, m sdk.Message, f []string) (state, error) {
	n, err1 := strconv.Atoi(f[1])
	gap, err2 := strconv.Atoi(f[2])
	left, err3 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil || err3 != nil {
		return s, sdk.Terminal(fmt.Errorf("ctm: bad fire %q", m.Payload))
	}
	s.Fired = append(s.Fired, fire{Tag: f[0], N: n, ID: ctx.TimerID(), From: m.Sender, At: time.Now().UnixNano()})
	if left > 0 {
		next := fmt.Sprintf("fire %s %d %d %d", f[0], n+1, gap, left-1)
		ctx.SendAfter(time.Duration(gap)*time.Millisecond, ctx.Actor(), []byte(next))
	}
	return s, nil
}
