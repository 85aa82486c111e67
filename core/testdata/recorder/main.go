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
	case strings.HasPrefix(p, "send:"):
		parts := strings.SplitN(p, ":", 3)
		ctx.Send(parts[1], []byte(parts[2]))
	}
	s.Applied = append(s.Applied, p)
	ctx.Reply([]byte("ok:" + p))
	return s, nil
}

func main() {
	sdk.Serve(sdk.Module[state]{
		Name:      "recorder",
		Version:   "1.0.0",
		Behaviour: sdk.Funcs[state]{HandleFunc: handle},
	})
}
