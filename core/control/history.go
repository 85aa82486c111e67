package control

import (
	"cmp"
	"fmt"
	"math"
	"strings"
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
		Actors: max(ActorsMoved(rec.Steps), rec.Actors), Steps: make([]UpgradeStep, len(rec.Steps)), Canary: rec.Canary,
		ClusterOp: rec.ClusterOp, Member: rec.Member,
	}
	if !rec.Ended.IsZero() {
		out.DurationSeconds = rec.Ended.Sub(rec.Started).Seconds()
	}
	for i, s := range rec.Steps {
		out.Steps[i] = UpgradeStep{Actor: s.Actor, Step: s.Step, DurationSeconds: s.Duration.Seconds(), DrainSeconds: s.Drain.Seconds()}
	}
	return out
}

// NewUpgradeRecords is recs as the API shows them ([] for none): the
// records that the members of a cluster wrote of their shares of one op
// become one record, where the first of them was (mergeShares).
func NewUpgradeRecords(recs []mailbox.UpgradeRecord) []UpgradeRecord {
	out := make([]UpgradeRecord, 0, len(recs))
	shares := map[string][]mailbox.UpgradeRecord{}
	for _, r := range recs {
		if r.ClusterOp != "" {
			shares[r.ClusterOp] = append(shares[r.ClusterOp], r)
		}
	}
	for _, r := range recs {
		switch s, ok := shares[r.ClusterOp]; {
		case r.ClusterOp == "":
			out = append(out, NewUpgradeRecord(r))
		case ok:
			out = append(out, mergeShares(s))
			delete(shares, r.ClusterOp)
		}
	}
	return out
}

// mergeShares is one cluster op from its members' records, oldest first:
// the first names it; the times span them all; the steps, and so the
// actors, are all of theirs; the outcome is the first that is not a
// completion, with each member's error.
func mergeShares(recs []mailbox.UpgradeRecord) UpgradeRecord {
	var all mailbox.UpgradeRecord
	all, all.Steps = recs[0], nil
	var errs []string
	for _, r := range recs {
		all.Steps = append(all.Steps, r.Steps...)
		if r.Started.Before(all.Started) {
			all.Started = r.Started
		}
		if r.Ended.After(all.Ended) {
			all.Ended = r.Ended
		}
		all.Canary = cmp.Or(all.Canary, r.Canary)
		if completed(all.Outcome) && !completed(r.Outcome) {
			all.Outcome = r.Outcome // a share that did not complete is the op's outcome
		}
		if r.Error != "" {
			errs = append(errs, fmt.Sprintf("member %s: %s", cmp.Or(r.Member, "?"), r.Error))
		}
	}
	if len(recs) > 1 {
		all.Error = strings.Join(errs, "; ")
	}
	out := NewUpgradeRecord(all)
	out.Member = ""
	for _, r := range recs {
		out.Members = append(out.Members, MemberShare{
			Member: r.Member, ID: r.ID, Started: r.Started, Ended: r.Ended,
			Outcome: r.Outcome, Error: r.Error, Actors: ActorsMoved(r.Steps),
		})
	}
	return out
}

// completed says whether an op's outcome is upgrade.OutcomeCompleted or
// a form of it ("completed after a core restart"); control does not
// import upgrade, whose upgrader is an interface here.
func completed(outcome string) bool { return strings.HasPrefix(outcome, "completed") }

// StoreRecord is r as the store keeps it (durations rounded to the
// nanosecond), for a program that reads the history through the API and
// works with mailbox.UpgradeRecord.
func StoreRecord(r UpgradeRecord) mailbox.UpgradeRecord {
	out := mailbox.UpgradeRecord{
		ID: r.ID, Kind: r.Kind, Behaviour: r.Behaviour, From: r.From, To: r.To,
		Started: r.Started, Ended: r.Ended, Outcome: r.Outcome, Error: r.Error,
		Canary: r.Canary, ClusterOp: r.ClusterOp, Member: r.Member,
	}
	if len(r.Steps) == 0 {
		out.Actors = r.Actors
	}
	for _, s := range r.Steps {
		out.Steps = append(out.Steps, mailbox.UpgradeStep{Actor: s.Actor, Step: s.Step, Duration: seconds(s.DurationSeconds), Drain: seconds(s.DrainSeconds)})
	}
	return out
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }
