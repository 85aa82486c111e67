package core

import "time"

// Observer receives the core's events for metrics. Calls are made on hot
// paths and must not block; the zero Config uses a no-op observer. The
// Prometheus exporter in internal/metrics implements it; gauges such as mailbox
// depth are read from Status at scrape time instead.
type Observer interface {
	// BatchCommitted: n messages of actor were handled and committed;
	// took is from reading the batch to the end of its commit.
	BatchCommitted(actor, behaviour string, n int, took time.Duration)
	// MessageFailed: one attempt at a message failed (error result, or
	// its module crashed or hung while handling it alone).
	MessageFailed(actor, behaviour string)
	// DeadLettered: a message was moved to the dead letters.
	DeadLettered(actor, behaviour string)
	// ModuleStarted: a module process of behaviour started; restart is
	// false for the first generation of a pool.
	ModuleStarted(behaviour string, restart bool)
}

type noObserver struct{}

func (noObserver) BatchCommitted(string, string, int, time.Duration) {}
func (noObserver) MessageFailed(string, string)                      {}
func (noObserver) DeadLettered(string, string)                       {}
func (noObserver) ModuleStarted(string, bool)                        {}
