package control

import (
	"math"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// UpgradeRecord is one upgrade, rollback or state repair as the API shows
// it (GET /v1/history, and the answer of upgrade and rollback): the store's
// mailbox.UpgradeRecord in the API's JSON style, like Status: snake_case
// names, durations in seconds, times in RFC 3339.
type UpgradeRecord struct {
	ID        uint64    `json:"id"`
	Kind      string    `json:"kind"` // upgrade, rollback or repair (of one actor's state)
	Behaviour string    `json:"behaviour"`
	From      string    `json:"from"` // module versions, e.g. "1.0.0 (3f2a9c1b)"; for a repair, the state
	To        string    `json:"to"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended,omitzero"`
	// DurationSeconds is Ended - Started.
	DurationSeconds float64 `json:"duration_seconds"`
	// Outcome is "completed", "rolled back", "failed", ...; Error says why
	// it did not complete.
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// Actors is how many actors the steps moved (see ActorsMoved).
	Actors int           `json:"actors"`
	Steps  []UpgradeStep `json:"steps"`
}

// UpgradeStep is one timed step of an upgrade: of one actor (a pause), or
// of the whole behaviour (Actor "", e.g. loading the module).
type UpgradeStep struct {
	Actor           string  `json:"actor,omitempty"`
	Step            string  `json:"step"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// ActorsMoved counts the distinct actors named by steps: behaviour-wide
// steps (no actor) are not actors, and an actor moved and moved back
// counts once.
func ActorsMoved(steps []mailbox.UpgradeStep) int {
	seen := map[string]bool{}
	for _, s := range steps {
		if s.Actor != "" {
			seen[s.Actor] = true
		}
	}
	return len(seen)
}

// NewUpgradeRecord is rec as the API shows it.
func NewUpgradeRecord(rec mailbox.UpgradeRecord) UpgradeRecord {
	out := UpgradeRecord{
		ID: rec.ID, Kind: rec.Kind, Behaviour: rec.Behaviour, From: rec.From, To: rec.To,
		Started: rec.Started, Ended: rec.Ended, Outcome: rec.Outcome, Error: rec.Error,
		Actors: ActorsMoved(rec.Steps), Steps: make([]UpgradeStep, len(rec.Steps)),
	}
	if !rec.Ended.IsZero() {
		out.DurationSeconds = rec.Ended.Sub(rec.Started).Seconds()
	}
	for i, s := range rec.Steps {
		out.Steps[i] = UpgradeStep{Actor: s.Actor, Step: s.Step, DurationSeconds: s.Duration.Seconds()}
	}
	return out
}

// NewUpgradeRecords is recs as the API shows them ([] for none).
func NewUpgradeRecords(recs []mailbox.UpgradeRecord) []UpgradeRecord {
	out := make([]UpgradeRecord, len(recs))
	for i, r := range recs {
		out[i] = NewUpgradeRecord(r)
	}
	return out
}

// Record is r as the store keeps it.
func (r UpgradeRecord) Record() mailbox.UpgradeRecord {
	out := mailbox.UpgradeRecord{
		ID: r.ID, Kind: r.Kind, Behaviour: r.Behaviour, From: r.From, To: r.To,
		Started: r.Started, Ended: r.Ended, Outcome: r.Outcome, Error: r.Error,
	}
	for _, s := range r.Steps {
		out.Steps = append(out.Steps, mailbox.UpgradeStep{Actor: s.Actor, Step: s.Step, Duration: seconds(s.DurationSeconds)})
	}
	return out
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }
