// Package config reads the graft core's one YAML file and turns it into a
// core.Config. It exists so that every mistake in that file is found before
// anything starts, and reported all at once, each problem with its line and
// key (guarantee G8 in the README's table of guarantees): unknown keys, bad values, missing
// or non-executable binaries, duplicate actors, unknown behaviours and
// requirement cycles.
//
// `graft run` and a program that embeds the core (package host) share it:
// Load reads a file; a program that builds its config in Go starts from
// Defaults and is held to the same rules by Check (each problem then named
// by its key alone).
//
// Relative paths (store.path, control.dir, behaviours.*.binary) resolve
// against the folder of the config file, so a config and its plugins can be
// moved together.
//
// # Example
//
//	# graft.yaml
//	store:
//	  path: ./data            # folder of the embedded store (created if missing)
//	  durability: sync        # sync (fsync before a send returns) | relaxed
//	control:
//	  dir: ./run              # the control socket is ./run/graft.sock, mode 0600;
//	                          # plugins' sockets go under ./run/p, emptied at start
//	limits:
//	  max_message_size: 1MiB  # payloads and replies; bytes or KiB/MiB
//	  max_attempts: 5         # failed attempts before a message is dead-lettered
//	  batch_size: 64          # messages per Handle
//	  max_batch_bytes: 4MiB   # payload bytes per Handle (a larger message goes alone)
//	  max_state_size: 4MiB    # an actor's encoded state; a result over it fails that message
//	supervision:              # OTP settings of every behaviour's supervisor
//	  strategy: one_for_one   # one_for_one | one_for_all | rest_for_one
//	  max_restarts: 3         # intensity: more than this many restarts ...
//	  period: 5s              # ... within this period and the supervisor gives up
//	  backoff_min: 100ms      # delay before a restart, doubling ...
//	  backoff_max: 10s        # ... up to this
//	upgrade:                  # how every upgrade moves actors
//	  group_size: 64          # actors paused, migrated and committed together
//	  max_pause: 50ms         # an actor that would pause longer stays on the old version ...
//	  over_budget: retry      # ... and is retried once the rest moved (retry), or the upgrade stops (stop)
//	behaviours:
//	  counter:                # the key is the behaviour name the plugin must report
//	    binary: ./plugins/counter
//	    sha256: ""            # optional pin of the binary's content (hex)
//	    start_timeout: 10s    # start and handshake of a module process
//	    call_timeout: 30s     # one batch handled by the module
//	    drain_timeout: 5s     # graceful stop of a module process
//	    env: ["COUNTER_DEBUG=1", AWS_REGION]  # KEY=value, or KEY: the core's own value
//	    memory: 256MiB        # most memory of its processes, as systemd's MemoryMax
//	    pids: 64              # most tasks, threads included (TasksMax)
//	    cpu_weight: 100       # CPU share under contention, 1-10000 (CPUWeight)
//	    virtual: false        # true: owns every actor name counter/KEY; the first send
//	                          # or call to such a name creates the actor (see below)
//	    passivate_after: 5m   # unset: actors stay in memory; set: an actor idle this
//	                          # long leaves memory until its next message (see below)
//	    verify_window: 16     # unset: none; keep each actor's last 16 handled messages
//	                          # for dry runs to replay on a new version (see graft upgrade)
//	    upgrade:              # unset: an upgrade moves every actor, in groups
//	      canary: 10%         # or [hits, misses]: moved first, then both versions serve ...
//	      bake: 30s           # ... this long, compared, then promoted or rolled back
//	      failure_rate_increase: 1%  # the canary's failure rate may be this much higher
//	      p99_ratio: 1.5      # and its handle latency p99 this many times the old one's
//	      min_messages: 20    # attempts the canary makes before a gate can fail it
//	      inconclusive: promote # on fewer attempts: promote, rollback, or hold (bake on until judged)
//	actors:
//	  - name: hits
//	    behaviour: counter
//	  - name: misses
//	    behaviour: counter
//	    requires: [hits]      # starts once hits is running
//	    restart: permanent    # permanent | transient | temporary
//	    process: own          # shared (default: one process per behaviour) | own
//
// Only store.path is required; every other key has the default shown
// (control.dir defaults to ./run, the timeouts to 10s, 30s and 5s; a
// behaviour has no memory, pids or cpu_weight limit unless it sets one).
// testdata/full.yaml is this example as a file.
//
// # Actors made at run time
//
// Besides the actors listed here, actors are made at run time: spawned
// (`graft spawn`, or a handler's ctx.Spawn) or, for a behaviour with
// virtual: true, created by the first message to a name BEHAVIOUR/KEY
// (e.g. counter/page-17). They live in the store's registry and are
// supervised like the listed ones. A virtual behaviour's name cannot
// contain "/", and a listed actor whose name is in a virtual behaviour's
// namespace must have that behaviour. An actor dropped from this list
// keeps its data and is not started (`graft status` shows it
// "unconfigured") until it is listed again or destroyed.
//
// # Passivation
//
// With passivate_after set, an actor of the behaviour stays in memory
// only while it works: idle that long, it leaves memory and its
// supervisor, keeping everything in the store (`graft status` shows it
// "passive"), and its next message, timer, upgrade or repair wakes it
// with its committed state. At start, idle actors are not loaded at all,
// so a behaviour with an actor per account starts at once whatever the
// number of accounts. Actors with requires, and those others require,
// stay in memory. Unset, every actor stays in memory, as in OTP.
//
// A plugin starts with a clean environment: PATH, HOME, LANG and TZ from
// the core, then what its env lists, and nothing else (no credentials, no
// GRAFT_SOCKET), and with no descriptor the core inherited. Its limits
// apply to the module's whole process tree through the cgroup the core
// puts it in (cgroup v2 or v1); a machine without one runs the behaviour
// without them, with a warning in the log.
package config
