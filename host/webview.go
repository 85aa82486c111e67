package host

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/graft-host/graft/web"
)

// webTokenFile is where a core that made its own web view token keeps
// it, next to the control socket (mode 0600): the operator on this
// machine reads it, no one else can.
const webTokenFile = "http.token"

// listenWeb claims the web view's address (step 3, with the metrics'). A
// view that listens beyond loopback needs a token the operator chose.
func (h *Host) listenWeb(p *parts) error {
	if h.opts.HTTPAddr == "" {
		return nil
	}
	l, err := net.Listen("tcp", h.opts.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http %s: %w", h.opts.HTTPAddr, err)
	}
	addr, _ := l.Addr().(*net.TCPAddr)
	p.webLoopback = addr != nil && addr.IP.IsLoopback()
	if !p.webLoopback && h.opts.HTTPToken == "" {
		l.Close()
		return fmt.Errorf("--http %s listens beyond loopback: give --http-token or --http-token-file, so that only who holds it can read or change anything, or bind it to 127.0.0.1", h.opts.HTTPAddr)
	}
	p.webL, p.webToken = l, h.opts.HTTPToken
	if p.webToken != "" {
		return nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("make the web view's token: %w", err)
	}
	p.webToken = hex.EncodeToString(b[:])
	path := filepath.Join(h.cfg.Control.Dir, webTokenFile)
	// A file left by an earlier core is replaced, not written through:
	// its mode may have been widened since.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replace the web view's token file %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(p.webToken+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the web view's token to %s: %w", path, err)
	}
	p.webTokenFile = path // removed when the core stops: the token dies with it
	return nil
}

// serveWeb serves the web view on its claimed listener (step 8), with the
// operator's token or the one listenWeb made.
func (h *Host) serveWeb(p *parts) {
	if p.webL == nil {
		return
	}
	token := p.webToken
	p.webSrv = &http.Server{
		Handler:           web.Handler(web.Options{API: p.srv.Handler(), Token: token, Loopback: p.webLoopback, Logger: h.log.With("component", "web")}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		if err := p.webSrv.Serve(p.webL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("web view stopped", "err", err)
		}
	}()
	h.webAddr = p.webL.Addr().String()
	if h.opts.HTTPToken != "" { // the operator's own secret: not into the logs
		h.log.Info("serving the web view: open this address and add #token=YOUR_TOKEN for changes",
			"url", "http://"+h.webAddr+"/", "addr", h.webAddr)
		return
	}
	h.log.Info("serving the web view: open this address (the fragment carries the token changes need)",
		"url", "http://"+h.webAddr+"/#token="+token, "addr", h.webAddr)
}

// WebAddr is the address the web view listens on (the port chosen when
// Options.HTTPAddr asked for port 0), or "" when it is off. Valid once
// Ready is closed.
func (h *Host) WebAddr() string {
	<-h.ready
	return h.webAddr
}
