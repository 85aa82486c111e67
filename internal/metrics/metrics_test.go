package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/metrics"
	"github.com/graft-host/graft/mailbox"
)

func TestObserverCountersAndStatusGauges(t *testing.T) {
	m := metrics.New(metrics.Build{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.26.8"})
	m.BatchCommitted("a", "rec", "1.0.0", 3, 2*time.Millisecond)
	m.BatchCommitted("a", "rec", "1.0.0", 1, time.Millisecond)
	m.BatchCommitted("b", "rec", "2.0.0", 1, time.Millisecond)
	m.MessageFailed("a", "rec")
	m.DeadLettered("a", "rec")
	m.ModuleStarted("rec", false)
	m.ModuleStarted("rec", true)
	m.Upgraded(mailbox.UpgradeRecord{Behaviour: "rec", Kind: "upgrade", Outcome: "completed",
		Steps: []mailbox.UpgradeStep{{Actor: "a", Step: "pause", Duration: time.Millisecond}, {Actor: "a", Step: "migrate", Duration: time.Second}}})
	m.WatchStatus(func(context.Context) ([]core.ActorStatus, error) {
		return []core.ActorStatus{{Name: "a", Behaviour: "rec", Status: "running", Depth: 7, DeadLetters: 1, Restarts: 2}}, nil
	})
	m.WatchUpgrades(func() map[string]string { return map[string]string{"rec": "baking"} },
		func() []metrics.ModuleInfo {
			return []metrics.ModuleInfo{{Behaviour: "rec", Version: "1.0.0", SHA256: "aa"}, {Behaviour: "rec", Version: "2.0.0", SHA256: "bb"}}
		})

	srv := httptest.NewServer(m.Handler(slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`graft_messages_processed_total{actor="a",behaviour="rec"} 4`,
		`graft_messages_failed_total{actor="a",behaviour="rec"} 1`,
		`graft_dead_lettered_total{actor="a",behaviour="rec"} 1`,
		`graft_batch_duration_seconds_count{behaviour="rec"} 3`,
		`graft_module_starts_total{behaviour="rec"} 2`,
		`graft_module_restarts_total{behaviour="rec"} 1`,
		`graft_upgrades_total{behaviour="rec",kind="upgrade",outcome="completed"} 1`,
		`graft_upgrade_pause_seconds_sum{behaviour="rec"} 0.001`,
		`graft_mailbox_depth{actor="a",behaviour="rec"} 7`,
		`graft_dead_letters{actor="a",behaviour="rec"} 1`,
		`graft_actor_restarts_total{actor="a",behaviour="rec"} 2`,
		`graft_actor_up{actor="a",behaviour="rec"} 1`,
		`graft_handle_duration_seconds_count{behaviour="rec",version="1.0.0"} 2`,
		`graft_handle_duration_seconds_count{behaviour="rec",version="2.0.0"} 1`,
		`graft_upgrade_phase{behaviour="rec",phase="baking"} 1`,
		`graft_build_info{commit="abc",goversion="go1.26.8",version="v1.2.3"} 1`,
		`graft_module_info{behaviour="rec",sha256="aa",version="1.0.0"} 1`,
		`graft_module_info{behaviour="rec",sha256="bb",version="2.0.0"} 1`,
		`go_goroutines`,
	} {
		assert.Contains(t, text, want)
	}
}

func TestStatusErrorFailsTheScrapeVisibly(t *testing.T) {
	m := metrics.New(metrics.Build{})
	m.WatchStatus(func(context.Context) ([]core.ActorStatus, error) { return nil, errors.New("store closed") })
	_, err := m.Registry().Gather()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "store closed")
}

// The Grafana dashboard in docs/ and the README's table name only series
// the core exports, so neither rots when a series is renamed.
func TestDashboardAndREADMENameRealSeries(t *testing.T) {
	m := metrics.New(metrics.Build{Version: "v"})
	m.BatchCommitted("a", "rec", "1.0.0", 1, time.Millisecond)
	m.MessageFailed("a", "rec")
	m.DeadLettered("a", "rec")
	m.ModuleStarted("rec", true)
	m.Passivated("rec")
	m.Woken("rec")
	m.Upgraded(mailbox.UpgradeRecord{Behaviour: "rec", Kind: "upgrade", Outcome: "completed", Steps: []mailbox.UpgradeStep{{Actor: "a", Step: "pause"}}})
	m.WatchStatus(func(context.Context) ([]core.ActorStatus, error) {
		return []core.ActorStatus{{Name: "a", Behaviour: "rec", Status: "running"}}, nil
	})
	m.WatchUpgrades(func() map[string]string { return map[string]string{"rec": "baking"} },
		func() []metrics.ModuleInfo { return []metrics.ModuleInfo{{Behaviour: "rec", Version: "1.0.0"}} })
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	known := map[string]bool{}
	for _, f := range families {
		known[f.GetName()] = true
	}
	series := regexp.MustCompile(`graft_[a-z_]+`)
	for _, doc := range []string{"../../docs/grafana-dashboard.json", "../../README.md"} {
		b, err := os.ReadFile(doc)
		require.NoError(t, err)
		for _, name := range series.FindAllString(string(b), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
			if strings.HasPrefix(base, "graft_host") || base == "graft_" {
				continue // not a series: a word in prose
			}
			assert.True(t, known[base], "%s names %s, which the core does not export", doc, name)
		}
	}
	text, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for name := range known {
		if strings.HasPrefix(name, "graft_") {
			assert.Contains(t, string(text), "`"+strings.TrimPrefix(name, "graft_"), "the README's metrics table lacks %s", name)
		}
	}
}
