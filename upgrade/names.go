package upgrade

// The names an upgrade writes into the journal and the history. They are
// typed so a misspelt one does not compile; the journal and the store's
// history (mailbox.UpgradeRecord, mailbox.UpgradeStep) keep plain strings,
// converted where a record is made, so what is on disk does not change.

// Kind says which way an Op moves a behaviour; it is journaled with the op
// and recorded as the history's Kind.
type Kind string

const (
	// KindUpgrade moves the actors to a new binary, migrating their state
	// up with the new module.
	KindUpgrade Kind = "upgrade"
	// KindRollback moves the actors back to the version before the
	// current one, migrating their state down with the newer module.
	KindRollback Kind = "rollback"
	// KindDryRun checks a new binary against every actor's committed
	// state and moves nothing (dryrun.go); it is never journaled.
	KindDryRun Kind = "dry-run"
)

// Step names a timed step in the history (mailbox.UpgradeStep.Step), so
// metrics and `graft history` can tell the actors' pauses from the rest.
// These are the only steps an upgrade records.
type Step string

const (
	// StepLoad is the behaviour-wide time to start the target module and
	// check it (Actor "").
	StepLoad Step = "load"
	// StepPause is one actor's pause: from its pause, through migration
	// and commit, to its resume on the target module. Each actor moved has
	// one (two if it was moved back).
	StepPause Step = "pause"
)

// Outcome is how an upgrade or rollback ended, as the history's Outcome
// says it to operators and scripts.
type Outcome string

const (
	// OutcomeCompleted: every actor is on the target version.
	OutcomeCompleted Outcome = "completed"
	// OutcomeCompletedAfterRestart: a core killed in the middle of the op
	// finished it when it restarted.
	OutcomeCompletedAfterRestart Outcome = "completed after a core restart"
	// OutcomeFailed: the op stopped; the record's Error says how many
	// actors moved and where each one stays.
	OutcomeFailed Outcome = "failed"
	// OutcomeAbandoned: a core restarted in the middle of the op could not
	// finish it (the target no longer loads, say); no actor is left
	// between versions.
	OutcomeAbandoned Outcome = "abandoned after a core restart"
	// OutcomeRolledBack: the op failed part-way and the actors it had
	// moved were moved back (Options.RollbackOnFailure).
	OutcomeRolledBack Outcome = "rolled back"
	// OutcomeRefused: the binary offered could have been written by
	// another user (G9) and was never run.
	OutcomeRefused Outcome = "refused"
)
