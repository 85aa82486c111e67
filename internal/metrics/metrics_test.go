package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core"
	"github.com/graft-host/graft/internal/metrics"
	"github.com/graft-host/graft/mailbox"
)

func TestObserverCountersAndStatusGauges(t *testing.T) {
	m := metrics.New()
	m.BatchCommitted("a", "rec", 3, 2*time.Millisecond)
	m.BatchCommitted("a", "rec", 1, time.Millisecond)
	m.MessageFailed("a", "rec")
	m.DeadLettered("a", "rec")
	m.ModuleStarted("rec", false)
	m.ModuleStarted("rec", true)
	m.Upgraded(mailbox.UpgradeRecord{Behaviour: "rec", Kind: "upgrade", Outcome: "completed",
		Steps: []mailbox.UpgradeStep{{Actor: "a", Step: "pause", Duration: time.Millisecond}, {Actor: "a", Step: "migrate", Duration: time.Second}}})
	m.WatchStatus(func(context.Context) ([]core.ActorStatus, error) {
		return []core.ActorStatus{{Name: "a", Behaviour: "rec", Status: "running", Depth: 7, DeadLetters: 1, Restarts: 2}}, nil
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
		`graft_batch_duration_seconds_count{behaviour="rec"} 2`,
		`graft_module_starts_total{behaviour="rec"} 2`,
		`graft_module_restarts_total{behaviour="rec"} 1`,
		`graft_upgrades_total{behaviour="rec",kind="upgrade",outcome="completed"} 1`,
		`graft_upgrade_pause_seconds_sum{behaviour="rec"} 0.001`,
		`graft_mailbox_depth{actor="a",behaviour="rec"} 7`,
		`graft_dead_letters{actor="a",behaviour="rec"} 1`,
		`graft_actor_restarts_total{actor="a",behaviour="rec"} 2`,
		`graft_actor_up{actor="a",behaviour="rec"} 1`,
		`go_goroutines`,
	} {
		assert.Contains(t, text, want)
	}
}

func TestStatusErrorFailsTheScrapeVisibly(t *testing.T) {
	m := metrics.New()
	m.WatchStatus(func(context.Context) ([]core.ActorStatus, error) { return nil, errors.New("store closed") })
	_, err := m.Registry().Gather()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "store closed")
}
