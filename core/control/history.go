package control

import (
	"math"
	"time"

	"github.com/graft-host/graft/mailbox"
)

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
		Actors: ActorsMoved(rec.Steps), Steps: make([]UpgradeStep, len(rec.Steps)), Canary: rec.Canary,
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

// StoreRecord is r as the store keeps it (durations rounded to the
// nanosecond), for a program that reads the history through the API and
// works with mailbox.UpgradeRecord.
func StoreRecord(r UpgradeRecord) mailbox.UpgradeRecord {
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
