// Command flood is an echo behaviour that, from its first message on, floods
// stdout and stderr without pause: both the raw file descriptors (relayed by
// graft's runner) and go-plugin's forwarded os.Stdout/os.Stderr. (Writing
// on stdout before the handshake would break the protocol, correctly
// failing the start, so the flood waits for the first message.)
package main

import (
	"os"
	"strings"
	"sync"

	"github.com/graft-host/graft/dynamic/sdk"
)

func flood() {
	line := []byte(strings.Repeat("flood ", 30) + "\n")
	for _, w := range []*os.File{os.NewFile(1, "stdout"), os.NewFile(2, "stderr"), os.Stdout, os.Stderr} {
		go func() {
			for {
				_, _ = w.Write(line)
			}
		}()
	}
}

func main() {
	var once sync.Once
	sdk.Serve(sdk.Module[int]{Name: "flood", Version: "1",
		Behaviour: sdk.Funcs[int]{HandleFunc: func(ctx *sdk.Context, s int, m sdk.Message) (int, error) {
			once.Do(flood)
			ctx.Reply(m.Payload)
			return s + 1, nil
		}}})
}
