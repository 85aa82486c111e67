package api

// DryRunRequest is the body of dry-run: the binary to check, absolute
// ("" for the configured one).
type DryRunRequest struct {
	Binary string `json:"binary,omitempty"`
}

// DryRunReport is what a dry run found (upgrade.DryRunReport on the
// wire): nothing was paused or moved.
type DryRunReport struct {
	Behaviour string `json:"behaviour"`
	From      string `json:"from"`
	To        string `json:"to"`
	Actors    int    `json:"actors"`
	// NoState counts the actors with nothing committed yet.
	NoState int `json:"no_state"`
	// Migrated and RoundTrip count the states that migrated up, and that
	// came back down equal.
	Migrated  int `json:"migrated"`
	RoundTrip int `json:"round_trip"`
	// Failed counts the actors that did not pass, Blocking those whose
	// failure blocks an upgrade to the binary ("migration failed",
	// "migration panicked", "migration timed out", "cannot migrate"; the
	// others, "no down-migration" and "round trip differs", are
	// warnings). Counts has them by kind, and Failures the first actors
	// of each kind, with a detail.
	Failed   int                        `json:"failed"`
	Blocking int                        `json:"blocking"`
	Counts   map[string]int             `json:"counts,omitempty"`
	Failures map[string][]DryRunFailure `json:"failures,omitempty"`
	// Replay is what replaying the traffic the store kept found, for a
	// behaviour with verify_window (nil otherwise). Its failures count in
	// Blocking.
	Replay *DryRunReplay `json:"replay,omitempty"`
	// Summary is the report in one line, as the history keeps it.
	Summary    string  `json:"summary"`
	TookSecond float64 `json:"took_seconds"`
}

// DryRunReplay is a dry run's replay of recent traffic on the new
// version: Messages replayed; Counts by kind ("replay failed": the new
// version failed where the old succeeded, which blocks an upgrade;
// "replies differ", "sends differ", "state differs" (per batch), and
// "skipped (calls another actor)"); Examples the first of each kind.
type DryRunReplay struct {
	Messages int                        `json:"messages"`
	Counts   map[string]int             `json:"counts"`
	Examples map[string][]DryRunFailure `json:"examples,omitempty"`
}

// DryRunFailure is one actor that did not pass.
type DryRunFailure struct {
	Actor  string `json:"actor"`
	Detail string `json:"detail,omitempty"`
}
