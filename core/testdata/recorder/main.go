// Command recorder is the core tests' behaviour: its state records every
// payload it applied, in order, so a test can check exactly-once and
// per-sender order from the committed state alone.
//
//	"crash"            exits the process (a poison message)
//	"error"            fails the message alone
//	"hang"             blocks forever (the host declares a hang)
//	"call:ACTOR:BODY"  calls ACTOR synchronously, records and replies its answer
//	"callcrash:ACTOR"  calls ACTOR, then crashes once (marker file in
//	                   $RECORDER_MARKERS), so the batch is redelivered
//	"send:ACTOR:BODY"  sends BODY to ACTOR
//	"pid"              replies with the module's pid
//	"refuse:ACTOR:WHY" records it, sends "note" to ACTOR (if any), and refuses
//	                   the request with the terminal error WHY
//	"probe:ACTOR:BODY" calls ACTOR and replies with how the call ended, as
//	                   the SDK's error kinds classify it
//	"probebig:ACTOR:N" the same with an N-byte body
//	"silent"           recorded, no reply
//	"grow:N"           recorded with N bytes of padding (a state that grows)
//	"big:N"            replies N bytes
//	anything else      recorded and answered "ok:" + payload
package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/graft-host/graft/dynamic/sdk"
)

type state struct {
	Applied []string `json:"applied"`
}

func handle(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
	p := string(m.Payload)
	switch {
	case p == "crash":
		os.Exit(3)
	case p == "error":
		return s, errors.New("refused on request")
	case p == "hang":
		select {}
	case p == "pid":
		ctx.Reply([]byte(strconv.Itoa(os.Getpid())))
		return s, nil
	case strings.HasPrefix(p, "call:"):
		parts := strings.SplitN(p, ":", 3)
		reply, err := ctx.Call(parts[1], []byte(parts[2]))
		if err != nil {
			return s, err
		}
		s.Applied = append(s.Applied, p+"="+string(reply))
		ctx.Reply(reply)
		return s, nil
	case strings.HasPrefix(p, "callcrash:"):
		to := strings.TrimPrefix(p, "callcrash:")
		reply, err := ctx.Call(to, []byte("from-callcrash"))
		if err != nil {
			return s, err
		}
		marker := filepath.Join(os.Getenv("RECORDER_MARKERS"), "callcrash-"+strconv.FormatUint(m.Seq, 10))
		if _, err := os.Stat(marker); err != nil {
			_ = os.WriteFile(marker, nil, 0o600)
			os.Exit(4) // crash after the call: the batch is redelivered
		}
		s.Applied = append(s.Applied, p+"="+string(reply))
		ctx.Reply(reply)
		return s, nil
	case strings.HasPrefix(p, "refuse:"):
		parts := strings.SplitN(p, ":", 3)
		if parts[1] != "" {
			ctx.Send(parts[1], []byte("note"))
		}
		s.Applied = append(s.Applied, p)
		return s, sdk.Terminal(errors.New(parts[2]))
	case strings.HasPrefix(p, "probe:"):
		parts := strings.SplitN(p, ":", 3)
		reply, err := ctx.Call(parts[1], []byte(parts[2]))
		ctx.Reply([]byte(classify(reply, err)))
		return s, nil
	case strings.HasPrefix(p, "probebig:"):
		parts := strings.SplitN(p, ":", 3)
		n, _ := strconv.Atoi(parts[2])
		reply, err := ctx.Call(parts[1], make([]byte, n))
		ctx.Reply([]byte(classify(reply, err)))
		return s, nil
	case strings.HasPrefix(p, "grow:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(p, "grow:"))
		s.Applied = append(s.Applied, p+":"+strings.Repeat("x", n))
		ctx.Reply([]byte("grown"))
		return s, nil
	case strings.HasPrefix(p, "big:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(p, "big:"))
		ctx.Reply(make([]byte, n))
		return s, nil
	case p == "silent":
		s.Applied = append(s.Applied, p)
		return s, nil
	case strings.HasPrefix(p, "send:"):
		parts := strings.SplitN(p, ":", 3)
		ctx.Send(parts[1], []byte(parts[2]))
	case strings.HasPrefix(p, "fan:"): // fan:N:target sends N messages to target
		parts := strings.SplitN(p, ":", 3)
		n, _ := strconv.Atoi(parts[1])
		for i := range n {
			ctx.Send(parts[2], []byte("fanned-"+strconv.Itoa(i)))
		}
	}
	s.Applied = append(s.Applied, p)
	ctx.Reply([]byte("ok:" + p))
	return s, nil
}

// classify names how a call ended, through errors.As and errors.Is only.
func classify(reply []byte, err error) string {
	var refused *sdk.RefusedError
	switch {
	case err == nil:
		return "ok:" + string(reply)
	case errors.As(err, &refused):
		return "refused by " + refused.Actor + ": " + refused.Reason
	case errors.Is(err, sdk.ErrCallCycle):
		return "cycle"
	case errors.Is(err, sdk.ErrUnknownActor):
		return "unknown actor"
	case errors.Is(err, sdk.ErrCallTimeout):
		return "timeout"
	case errors.Is(err, sdk.ErrTooLarge):
		return "too large"
	case errors.Is(err, sdk.ErrDeadLettered):
		return "dead-lettered"
	case errors.Is(err, sdk.ErrNoReply):
		return "no reply"
	}
	return "other: " + err.Error()
}

func main() {
	sdk.Serve(sdk.Module[state]{
		Name:      "recorder",
		Version:   "1.0.0",
		Behaviour: sdk.Funcs[state]{HandleFunc: handle},
	})
}
