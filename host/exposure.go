package host

import (
	"log/slog"
	"net"
)

// warnIfExposed logs one warning when l, serving the endpoint what
// without any authentication, accepts connections from beyond this
// machine: it is bound to every interface (0.0.0.0, ::, or no host) or to
// an address that is not loopback. It looks at the address actually bound,
// so a host name is judged by what it resolved to. setting names where
// the operator sets the address, for the fix the warning suggests.
func warnIfExposed(log *slog.Logger, what, setting string, l net.Listener) {
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok || addr.IP.IsLoopback() {
		return
	}
	reach := "every interface"
	if !addr.IP.IsUnspecified() {
		reach = "a non-loopback address"
	}
	log.Warn(what+" endpoint has no authentication and listens beyond loopback: anyone who can reach it can read it; "+
		"bind it to loopback ("+setting+" 127.0.0.1:PORT) or restrict access with a firewall or an authenticating proxy",
		"addr", addr.String(), "listens_on", reach)
}
