package proc

import (
	"bytes"
	"os"
	"strings"
	"time"
)

// readBuf is the size of one read from a plugin's pipe: a flood arrives in
// chunks this large, each dropped or split as a whole.
const readBuf = 64 << 10

// dropPace is the pause between two reads of a pipe while its output is
// being dropped and the last read was short: a plugin flooding with small
// writes would otherwise cost the host one read per write (the pipe holds
// 64 KiB, so the plugin may write up to ~12 MB/s before it waits for us).
const dropPace = 5 * time.Millisecond

// maxHandshake bounds the first stdout line (go-plugin's is ~100 bytes);
// a longer one is cut there.
const maxHandshake = 8 << 10

// relay drains one of the plugin's pipes into s until EOF or CloseOutput.
// For stdout the first line is the handshake: it goes to go-plugin, and is
// kept for diagnostics.
func (p *Process) relay(r *os.File, s *Stream, handshake bool) {
	defer p.relays.Done()
	defer s.Flush()
	buf := make([]byte, readBuf)
	var first []byte
	for {
		n, err := r.Read(buf)
		b := buf[:n]
		if handshake && n > 0 {
			i := bytes.IndexByte(b, '\n')
			if i < 0 && len(first)+n < maxHandshake {
				first = append(first, b...)
				continue
			}
			if i < 0 {
				i = min(n, maxHandshake-len(first)) - 1
			}
			first = append(first, b[:i+1]...)
			p.handshakeLine(first)
			handshake, b = false, b[i+1:]
		}
		if len(b) > 0 {
			_, _ = s.Write(b)
		}
		if err != nil {
			break
		}
		if n < readBuf/2 && p.out.Dropping() {
			time.Sleep(dropPace) // pacing, so that the next read is a large one
		}
	}
	if handshake && len(first) > 0 {
		p.handshakeLine(first) // EOF before a line end: still what it said
	}
	_ = p.hsW.Close()
}

// handshakeLine hands the first stdout line to go-plugin (which reads until
// EOF, so this cannot block for long) and keeps it.
func (p *Process) handshakeLine(line []byte) {
	p.mu.Lock()
	p.firstLine, p.sawLine = strings.TrimSpace(string(line)), true
	p.mu.Unlock()
	_, _ = p.hsW.Write(line)
	_ = p.hsW.Close()
}
