// Command effects is the core tests' behaviour for timers and actors made
// at run time. Its state records what it applied, in order: "init" from
// Init, each payload, and a timer's message as "timer:BODY@UNIXNANO" (the
// wall clock when it was handled), so a test can check from the committed
// state that a timer fired once and not before it was due, and that an
// actor was created (Init ran) once. Its behaviour name is $EFFECTS_NAME
// (default "effects"), so one binary serves several behaviours.
//
//	"spawn:NAME:BEHAVIOUR:INIT"  spawns NAME (INIT may be empty)
//	"after:MS:TO:BODY"           sets a timer; replies with its id
//	"spawnafter:NAME:MS:BODY"    spawns NAME of this behaviour with init
//	                             "init-NAME", and sets a timer to it
//	"cancel:ID"                  cancels a timer
//	"send:TO:BODY"               sends BODY to TO
//	"count:CMD"                  counts the handling in a file of
//	                             $EFFECTS_MARKERS (count-SEQ-ACTOR), then CMD
//	"crashonce:CMD"              CMD, then the first time (a marker file)
//	                             exits the process before answering, so the
//	                             batch is redelivered
//	"waitfile:NAME"              waits until $EFFECTS_MARKERS/NAME exists
//	"tick:N:MS"                  while N > 0, re-arms a timer to itself in
//	                             MS milliseconds with "tick:N-1:MS"
//	"error"                      fails the message alone
//	"crash"                      exits the process
//	anything else                recorded, and answered "ok:" + payload
//
// A "spawn", "after" or "send" payload is recorded too. If the file
// $EFFECTS_HANG exists when the process starts, it never completes the
// handshake (a module whose start hangs).
package main

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/graft-host/graft/dynamic/sdk"
)

type state struct {
	Applied []string `json:"applied"`
}

func marker(name string) string { return filepath.Join(os.Getenv("EFFECTS_MARKERS"), name) }

func handle(ctx *sdk.Context, s state, m sdk.Message) (state, error) {
	p := string(m.Payload)
	if m.TimerID != "" {
		s.Applied = append(s.Applied, "timer:"+p+"@"+strconv.FormatInt(time.Now().UnixNano(), 10))
		if strings.HasPrefix(p, "tick:") {
			tick(ctx, p)
		}
		return s, nil
	}
	cmd, rest, _ := strings.Cut(p, ":")
	switch cmd {
	case "error":
		return s, errors.New("refused on request")
	case "crash":
		os.Exit(3)
	case "count":
		name := "count-" + strconv.FormatUint(m.Seq, 10) + "-" + url.PathEscape(ctx.Actor())
		n, _ := os.ReadFile(marker(name))
		_ = os.WriteFile(marker(name), append(n, 'x'), 0o600)
		return handle(ctx, s, sdk.Message{Seq: m.Seq, ID: m.ID, Sender: m.Sender, Payload: []byte(rest), Attempt: m.Attempt})
	case "crashonce":
		s, err := handle(ctx, s, sdk.Message{Seq: m.Seq, ID: m.ID, Sender: m.Sender, Payload: []byte(rest), Attempt: m.Attempt})
		name := "crashed-" + strconv.FormatUint(m.Seq, 10) + "-" + url.PathEscape(ctx.Actor())
		if _, statErr := os.Stat(marker(name)); statErr != nil {
			_ = os.WriteFile(marker(name), nil, 0o600)
			os.Exit(4) // the effects are lost with the process: redelivered
		}
		return s, err
	case "waitfile":
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(marker(rest)); err == nil {
				break
			}
		}
	case "spawn":
		f := strings.SplitN(rest, ":", 3)
		ctx.Spawn(f[0], f[1], []byte(f[2]))
	case "after":
		f := strings.SplitN(rest, ":", 3)
		ms, _ := strconv.Atoi(f[0])
		ctx.Reply([]byte(ctx.SendAfter(time.Duration(ms)*time.Millisecond, f[1], []byte(f[2]))))
		s.Applied = append(s.Applied, p)
		return s, nil
	case "spawnafter":
		f := strings.SplitN(rest, ":", 3)
		ms, _ := strconv.Atoi(f[1])
		ctx.Spawn(f[0], behaviourName(), []byte("init-"+f[0]))
		ctx.SendAfter(time.Duration(ms)*time.Millisecond, f[0], []byte(f[2]))
	case "cancel":
		ctx.CancelTimer(rest)
	case "send":
		f := strings.SplitN(rest, ":", 2)
		ctx.Send(f[0], []byte(f[1]))
	case "tick":
		tick(ctx, p)
	}
	s.Applied = append(s.Applied, p)
	ctx.Reply([]byte("ok:" + p))
	return s, nil
}

// tick re-arms "tick:N:MS" as "tick:N-1:MS" to the actor itself while N > 0.
func tick(ctx *sdk.Context, p string) {
	f := strings.Split(p, ":")
	n, _ := strconv.Atoi(f[1])
	ms, _ := strconv.Atoi(f[2])
	if n > 0 {
		ctx.SendAfter(time.Duration(ms)*time.Millisecond, ctx.Actor(), []byte("tick:"+strconv.Itoa(n-1)+":"+f[2]))
	}
}

// behaviourName is the behaviour this process serves.
func behaviourName() string {
	if name := os.Getenv("EFFECTS_NAME"); name != "" {
		return name
	}
	return "effects"
}

func main() {
	if hang := os.Getenv("EFFECTS_HANG"); hang != "" {
		if _, err := os.Stat(hang); err == nil {
			time.Sleep(time.Hour)
		}
	}
	sdk.Serve(sdk.Module[state]{
		Name:    behaviourName(),
		Version: "1.0.0",
		Behaviour: sdk.Funcs[state]{
			InitFunc:   func(*sdk.Context) (state, error) { return state{Applied: []string{"init"}}, nil },
			HandleFunc: handle,
		},
	})
}
