// Package host runs one whole graft core in this process: the store, the
// binary cache and upgrade journal, the actors, the upgrader and its
// watcher, the control API and the metrics endpoint, brought up and torn
// down in one order. `graft run` is a thin caller of it (flags, logger,
// config file); a test or a program that embeds the core calls the same
// two steps, as nats-server's main does:
//
//	cfg, err := host.LoadConfig("graft.yaml") // or config.Defaults(...) in Go
//	h, err := host.New(host.Options{Config: cfg, Logger: log})
//	err = h.Run(ctx) // until ctx ends, SIGINT/SIGTERM, or the supervisor gives up
//
// New only checks: the config (every problem at once), and that another
// user could not have written the config file, the store, the binary cache
// or the control folder (guarantee G9). It creates and claims nothing, so
// a Host that is never run needs no cleanup and a refused config leaves no
// trace on disk. Run does the rest, in this order:
//
//	New    config + trust checks ............ nothing touched yet
//	Run ─┬ 1 claim the control socket ....... a second core stops here
//	     ├ 2 contain plugin process trees ... cgroups, or child subreaper
//	     ├ 3 bind the metrics address ....... (optional) fail before the store opens
//	     ├   etcd store: wait for a quorum .. socket answers through a control.Gate
//	     ├ 4 store folder, binary cache and journal
//	     ├ 5 empty the plugin socket folder . ours alone: we hold the lock
//	     ├ 6 core: open the store, start actors (waits ≤1s, rest in background)
//	     ├ 7 upgrader: finish interrupted upgrades, watch binaries
//	     ├ 8 serve the control API and metrics
//	     ├   Ready() closes ................. running
//	     └ stop: core (batches in flight commit, plugins stop, store closes)
//	         → control API, metrics → watcher → release the socket and lock
//
// Why this order:
//
//   - The control socket comes first because its lock is what makes a
//     core the only one on its control folder and store: a second core
//     on the same config is refused (control.ErrRunning) before it sweeps
//     cgroups, opens the store or empties the plugin socket folder that
//     the first core's plugins are using.
//   - Containment is set up before any plugin can start, so that no
//     plugin descendant escapes it.
//   - A metrics address already in use fails the start before the store
//     is opened and actors run.
//   - The store folder is created (0700) or checked before the store
//     opens it, and the journal is read before the core starts, because
//     the journal says which cached version each behaviour's actors run
//     (a core restarted mid-upgrade must run the bytes that can read the
//     state it committed).
//   - The plugin socket folder (control.dir/p, config.Control) is emptied
//     once the lock is held: what is there was left by a core killed with
//     kill -9, since no other live core can use that folder.
//   - The upgrader attaches after the actors have started, since it moves
//     running actors; the control API serves last, when every request it
//     takes has something to answer it. Clients that connect earlier wait
//     in the socket's backlog. The one exception is a store that does
//     not answer yet (an etcd cluster without a quorum): the core then
//     waits for it rather than exiting, and a control.Gate answers on the
//     socket meanwhile, with the reason in /v1/status and a 503 for every
//     other request; the gate hands the socket to the API once it serves.
//   - At the stop the socket and its lock are released last, after the
//     store is closed, so a new core can never open the store while this
//     one still has it open.
//
// Signals follow core.Core.RunUntilSignal: the first SIGINT or SIGTERM
// stops gracefully within Options.Grace, a second forces the stop. From
// the first signal a watchdog bounds the whole stop: if it is not over
// within Grace plus WatchdogSlack the process exits with status 1
// (Options.Exit), which is as safe as kill -9: nothing acknowledged is
// lost.
package host
