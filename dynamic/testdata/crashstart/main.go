// Command crashstart is a graft plugin that dies in main before it serves,
// the way a real plugin does when its setup fails. CRASHSTART_MODE (or
// main.mode, set with -ldflags "-X main.mode=...") picks how: panic, exit1
// (os.Exit(1) after a line on stderr), silent1 (os.Exit(1) saying nothing),
// fatal (log.Fatal), exit0 (a line on stderr, then exit 0); with neither,
// it serves as behaviour "crashstart" 1.0.0.
package main

import (
	"fmt"
	"log"
	"os"

	"github.com/graft-host/graft/dynamic/sdk"
)

var mode string

func main() {
	if m := os.Getenv("CRASHSTART_MODE"); m != "" {
		mode = m
	}
	switch mode {
	case "panic":
		panic("crashstart: cannot open its database")
	case "exit1":
		fmt.Fprintln(os.Stderr, "crashstart: missing setting DB_URL")
		os.Exit(1)
	case "silent1":
		os.Exit(1)
	case "fatal":
		log.Fatal("crashstart: fatal: config unreadable")
	case "exit0":
		fmt.Fprintln(os.Stderr, "usage: crashstart (run me from graft)")
		os.Exit(0)
	}
	sdk.Serve(sdk.Module[int]{Name: "crashstart", Version: "1.0.0",
		Behaviour: sdk.Funcs[int]{HandleFunc: func(_ *sdk.Context, s int, _ sdk.Message) (int, error) { return s + 1, nil }}})
}
