// Package web serves graft's operator view: every actor at a glance
// (filtered, sorted and paged on the server, so 100,000 actors stay
// usable, with each one's messages per second and, in a cluster, its
// owner), one actor's state, waiting and last handled messages, timers
// and dead letters, the behaviours
// and their versions, the upgrades in progress with a canary's phase and
// time left, and the history. `graft run --http ADDR` serves it.
//
// The page is three static files embedded in the binary (static/): plain
// HTML, CSS and JavaScript with no framework and no build step, so there
// is nothing to fetch from a CDN, nothing to pin in a package registry and
// nothing generated to keep in sync; the page works on a machine with no
// internet. It reads the same JSON API the graft command uses (package
// core/control/api), mounted under /api/, and updates live from a stream
// of server-sent events (/events) with no reload.
//
// # Who may do what
//
//	request ──> cross-origin check (net/http.CrossOriginProtection):
//	  │          a state-changing request from another site is refused 403
//	  ├─ GET/HEAD (a read, /events included):
//	  │    allowed on a loopback listener; elsewhere it needs the token
//	  └─ anything else (retry a dead letter, upgrade, promote, abort,
//	       rollback, stop, start): needs the token, always: 401 without
//
// The token goes in the X-Graft-Token header (the page keeps it in
// sessionStorage, read once from the #token= fragment the core logs, so
// it never reaches a server log or a Referer), or as ?token= for the
// event stream, which cannot set headers. A custom header also means a
// cross-site form cannot forge a change.
package web
