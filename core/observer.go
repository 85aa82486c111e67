package core

import "time"

// Observer receives the core's events for metrics. Calls are made on hot
// paths and must not block; the zero Config uses a no-op observer. The
// Prometheus exporter in internal/metrics implements it; gauges such as mailbox
// depth are read from Status at scrape time instead.
type Observer interface {
	// BatchCommitted: n messages of actor were handled and committed by
	// the module at code version; took is from reading the batch to the
	// end of its commit.
	BatchCommitted(actor, behaviour, version string, n int, took time.Duration)
	// MessageFailed: one attempt at a message failed (error result, or
	// its module crashed or hung while handling it alone).
	MessageFailed(actor, behaviour string)
	// DeadLettered: a message was moved to the dead letters.
	DeadLettered(actor, behaviour string)
	// ModuleStarted: a module process of behaviour started; restart is
	// false for the first generation of a pool.
	ModuleStarted(behaviour string, restart bool)
	// Passivated: an idle actor of behaviour left memory; Woken: a
	// passive one came back for its work (passivation.go). Their rates
	// say whether PassivateAfter suits the traffic: a wake soon after
	// each passivation means it is too short.
	Passivated(behaviour string)
	Woken(behaviour string)
}

type noObserver struct{}

func (noObserver) BatchCommitted(string, string, string, int, time.Duration) {}
func (noObserver) MessageFailed(string, string)                              {}
func (noObserver) DeadLettered(string, string)                               {}
func (noObserver) ModuleStarted(string, bool)                                {}
func (noObserver) Passivated(string)                                         {}
func (noObserver) Woken(string)                                              {}
