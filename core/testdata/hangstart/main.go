// Command hangstart never completes the plugin handshake: it stands for a
// plugin whose start hangs, which the core must bound by its start timeout.
package main

import "time"

func main() {
	time.Sleep(time.Hour)
}
