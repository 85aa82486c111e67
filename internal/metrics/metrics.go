// Package metrics exports the graft core's metrics to Prometheus with the
// official client library. Metrics implements core.Observer for the events
// the core reports as they happen (batches, failures, dead letters, module
// starts) and reads the gauges (mailbox depth, in flight, dead letters,
// restarts) from the core's status at scrape time, so the hot path only
// increments counters.
//
// Exported series (all prefixed graft_):
//
//	messages_processed_total{actor,behaviour}   messages handled and committed
//	messages_failed_total{actor,behaviour}      failed attempts at a message
//	dead_lettered_total{actor,behaviour}        messages moved to the dead letters
//	batch_duration_seconds{behaviour}           read batch -> commit done (histogram)
//	module_starts_total{behaviour}              module processes started
//	module_restarts_total{behaviour}            module processes restarted after a crash or hang
//	actor_passivations_total{behaviour}         idle actors that left memory (passivate_after)
//	actor_wakes_total{behaviour}                passive actors brought back by their work
//	upgrades_total{behaviour,kind,outcome}      finished upgrades and rollbacks
//	upgrade_pause_seconds{behaviour}            how long each actor was paused by an upgrade (histogram)
//	handle_duration_seconds{behaviour,version}  read batch -> commit done, by module version (histogram)
//	upgrade_phase{behaviour,phase}              1 for the phase of the upgrade in progress (gauge, at scrape)
//	build_info{version,commit,goversion}        always 1: which graft the core is
//	module_info{behaviour,version,sha256}       always 1: each module version that may run actors
//	mailbox_depth{actor,behaviour}              messages waiting (gauge, at scrape)
//	actor_in_flight{actor,behaviour}            messages handed to a module, not committed (gauge)
//	dead_letters{actor,behaviour}               messages sitting in the dead letters (gauge)
//	actor_restarts_total{actor,behaviour}       restarts of the actor by its supervisor
//	actor_up{actor,behaviour}                   1 if the actor is running or passive
//
// plus the Go runtime and process collectors.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/mailbox"
)

// StatusFunc reads the core's status; core.Core.Status is one.
type StatusFunc func(ctx context.Context) ([]core.ActorStatus, error)

// Metrics is one core's metrics, in a registry of its own (no global
// registry, so two cores in one test process do not collide).
type Metrics struct {
	reg            *prometheus.Registry
	processed      *prometheus.CounterVec
	failed         *prometheus.CounterVec
	deadLettered   *prometheus.CounterVec
	batch          *prometheus.HistogramVec
	moduleStarts   *prometheus.CounterVec
	moduleRestarts *prometheus.CounterVec
	passivations   *prometheus.CounterVec
	wakes          *prometheus.CounterVec
	upgrades       *prometheus.CounterVec
	upgradePause   *prometheus.HistogramVec
	handle         *prometheus.HistogramVec

	mu      sync.Mutex
	status  StatusFunc
	phases  func() map[string]string // behaviour -> upgrade phase
	modules func() []ModuleInfo
}

// ModuleInfo is one module version that may run actors, for
// graft_module_info.
type ModuleInfo struct {
	Behaviour, Version, SHA256 string
}

// Build says which graft the core is, for graft_build_info.
type Build struct {
	Version, Commit, GoVersion string
}

var _ core.Observer = (*Metrics)(nil)

// New builds the metrics and registers them.
func New(build Build) *Metrics {
	actor := []string{"actor", "behaviour"}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "graft_messages_processed_total",
			Help: "Messages handled and committed."}, actor),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "graft_messages_failed_total",
			Help: "Failed attempts at handling a message (error result, or its module crashed or hung on it)."}, actor),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "graft_dead_lettered_total",
			Help: "Messages moved to the dead letters after too many failed attempts."}, actor),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "graft_batch_duration_seconds",
			Help:    "Time from reading a batch to the end of its commit.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}, []string{"behaviour"}),
		moduleStarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "graft_module_starts_total",
			Help: "Module (plugin) processes started."}, []string{"behaviour"}),
		moduleRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "graft_module_restarts_total",
			Help: "Module processes restarted after a crash, hang or protocol error."}, []string{"behaviour"}),
		passivations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "graft_actor_passivations_total",
			Help: "Idle actors that left memory (passivate_after)."}, []string{"behaviour"}),
		wakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "graft_actor_wakes_total",
			Help: "Passive actors brought back into memory by their work."}, []string{"behaviour"}),
		upgrades: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "graft_upgrades_total",
			Help: "Finished upgrades and rollbacks, by outcome."}, []string{"behaviour", "kind", "outcome"}),
		upgradePause: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "graft_upgrade_pause_seconds",
			Help:    "How long an upgrade held each actor between two commits.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"behaviour"}),
		handle: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "graft_handle_duration_seconds",
			Help:    "Time from reading a batch to the end of its commit, by the module version that handled it (a canary's is compared with the old version's).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}, []string{"behaviour", "version"}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{Name: "graft_build_info", Help: "Always 1; its labels say which graft the core is.",
		ConstLabels: prometheus.Labels{"version": build.Version, "commit": build.Commit, "goversion": build.GoVersion}})
	buildInfo.Set(1)
	m.reg.MustRegister(m.processed, m.failed, m.deadLettered, m.batch, m.moduleStarts, m.moduleRestarts,
		m.passivations, m.wakes, m.upgrades, m.upgradePause, m.handle, buildInfo, statusCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchStatus sets where the scrape-time gauges come from; it is separate
// from New because the Observer is needed to build the core whose status
// it then reads.
func (m *Metrics) WatchStatus(f StatusFunc) {
	m.mu.Lock()
	m.status = f
	m.mu.Unlock()
}

// WatchUpgrades sets where the scrape-time upgrade gauges come from: the
// phase of each behaviour's upgrade in progress, and the module versions
// that may run actors.
func (m *Metrics) WatchUpgrades(phases func() map[string]string, modules func() []ModuleInfo) {
	m.mu.Lock()
	m.phases, m.modules = phases, modules
	m.mu.Unlock()
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn), Timeout: 10 * time.Second,
	})
}

// Registry is the registry the metrics live in (for tests and embedding).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// BatchCommitted implements core.Observer.
func (m *Metrics) BatchCommitted(actor, behaviour, version string, n int, took time.Duration) {
	m.processed.WithLabelValues(actor, behaviour).Add(float64(n))
	m.batch.WithLabelValues(behaviour).Observe(took.Seconds())
	m.handle.WithLabelValues(behaviour, version).Observe(took.Seconds())
}

// MessageFailed implements core.Observer.
func (m *Metrics) MessageFailed(actor, behaviour string) {
	m.failed.WithLabelValues(actor, behaviour).Inc()
}

// DeadLettered implements core.Observer.
func (m *Metrics) DeadLettered(actor, behaviour string) {
	m.deadLettered.WithLabelValues(actor, behaviour).Inc()
}

// ModuleStarted implements core.Observer.
func (m *Metrics) ModuleStarted(behaviour string, restart bool) {
	m.moduleStarts.WithLabelValues(behaviour).Inc()
	if restart {
		m.moduleRestarts.WithLabelValues(behaviour).Inc()
	}
}

// Passivated implements core.Observer.
func (m *Metrics) Passivated(behaviour string) { m.passivations.WithLabelValues(behaviour).Inc() }

// Woken implements core.Observer.
func (m *Metrics) Woken(behaviour string) { m.wakes.WithLabelValues(behaviour).Inc() }

// Upgraded records a finished upgrade or rollback and the pause of every
// actor it moved (the steps named "pause"; or, when there are none, the
// whole of each actor's steps). The upgrade machinery calls it.
func (m *Metrics) Upgraded(rec mailbox.UpgradeRecord) {
	m.upgrades.WithLabelValues(rec.Behaviour, rec.Kind, rec.Outcome).Inc()
	pauses := map[string]time.Duration{}
	named := false
	for _, s := range rec.Steps {
		if s.Actor == "" {
			continue
		}
		if s.Step == "pause" {
			if !named {
				clear(pauses)
				named = true
			}
			pauses[s.Actor] += s.Duration
		} else if !named {
			pauses[s.Actor] += s.Duration
		}
	}
	for _, d := range pauses {
		m.upgradePause.WithLabelValues(rec.Behaviour).Observe(d.Seconds())
	}
}

// statusCollector turns the core's status into gauges at scrape time.
type statusCollector struct{ m *Metrics }

var (
	depthDesc = prometheus.NewDesc("graft_mailbox_depth", "Messages waiting in the actor's mailbox.",
		[]string{"actor", "behaviour"}, nil)
	inFlightDesc = prometheus.NewDesc("graft_actor_in_flight", "Messages handed to a module and not yet committed.",
		[]string{"actor", "behaviour"}, nil)
	deadDesc = prometheus.NewDesc("graft_dead_letters", "Messages sitting in the actor's dead letters.",
		[]string{"actor", "behaviour"}, nil)
	restartsDesc = prometheus.NewDesc("graft_actor_restarts_total", "Restarts of the actor by its supervisor.",
		[]string{"actor", "behaviour"}, nil)
	phaseDesc = prometheus.NewDesc("graft_upgrade_phase", "1 for the phase of the behaviour's upgrade, rollback or dry run in progress (moving, dry run, canary, baking, promoting, rolling back); absent when none runs.",
		[]string{"behaviour", "phase"}, nil)
	moduleDesc = prometheus.NewDesc("graft_module_info", "Always 1: a module version that may run the behaviour's actors, with its binary's sha256.",
		[]string{"behaviour", "version", "sha256"}, nil)
	upDesc = prometheus.NewDesc("graft_actor_up", "1 if the actor is running or passive (woken by its next message), else 0.",
		[]string{"actor", "behaviour"}, nil)
)

func (statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{depthDesc, inFlightDesc, deadDesc, restartsDesc, upDesc, phaseDesc, moduleDesc} {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	status, phases, modules := c.m.status, c.m.phases, c.m.modules
	c.m.mu.Unlock()
	if phases != nil {
		for b, p := range phases() {
			ch <- prometheus.MustNewConstMetric(phaseDesc, prometheus.GaugeValue, 1, b, p)
		}
	}
	if modules != nil {
		for _, mi := range modules() {
			ch <- prometheus.MustNewConstMetric(moduleDesc, prometheus.GaugeValue, 1, mi.Behaviour, mi.Version, mi.SHA256)
		}
	}
	if status == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := status(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(depthDesc, err)
		return
	}
	for _, r := range rows {
		up := 0.0
		if r.Status == "running" || r.Status == core.StatusPassive {
			up = 1 // a passive actor is up: its next message wakes it
		}
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(r.Depth), r.Name, r.Behaviour)
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(r.InFlight), r.Name, r.Behaviour)
		ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(r.DeadLetters), r.Name, r.Behaviour)
		ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(r.Restarts), r.Name, r.Behaviour)
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, r.Name, r.Behaviour)
	}
}
