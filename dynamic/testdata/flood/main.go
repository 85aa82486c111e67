// Command flood is an echo behaviour that floods stdout and stderr (both
// the raw file descriptors and go-plugin's forwarded stdio) without pause.
package main

import (
	"os"
	"strings"

	"graft/dynamic/sdk"
)

func main() {
	line := []byte(strings.Repeat("flood ", 30) + "\n")
	raw1, raw2 := os.NewFile(1, "stdout"), os.NewFile(2, "stderr")
	go func() {
		for {
			_, _ = raw2.Write(line)
		}
	}()
	go func() {
		for {
			_, _ = os.Stderr.Write(line) // forwarded by go-plugin once serving
		}
	}()
	go func() {
		for {
			_, _ = os.Stdout.Write(line)
		}
	}()
	_ = raw1
	sdk.Serve(sdk.Module[int]{Name: "flood", Version: "1",
		Behaviour: sdk.Funcs[int]{HandleFunc: func(ctx *sdk.Context, s int, m sdk.Message) (int, error) {
			ctx.Reply(m.Payload)
			return s + 1, nil
		}}})
}
