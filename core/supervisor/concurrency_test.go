package supervisor_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/core/supervisor"
)

// stubChild is the smallest real child: it runs until stopped.
type stubChild struct {
	done chan struct{}
	once sync.Once
}

func (c *stubChild) Done() <-chan struct{} { return c.done }
func (c *stubChild) Err() error            { return nil }
func (c *stubChild) Stop(context.Context) error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// Many independent children start concurrently, but never more than
// MaxConcurrentStarts at once, and all of them start.
func TestStartsInFlightAreBounded(t *testing.T) {
	const n, limit = 2000, 16
	var inFlight, peak atomic.Int64
	var specs []supervisor.ChildSpec
	for i := 0; i < n; i++ {
		specs = append(specs, supervisor.ChildSpec{
			ID: fmt.Sprintf("c%d", i),
			Start: func(ctx context.Context) (supervisor.Child, error) {
				now := inFlight.Add(1)
				for {
					p := peak.Load()
					if now <= p || peak.CompareAndSwap(p, now) {
						break
					}
				}
				defer inFlight.Add(-1)
				time.Sleep(100 * time.Microsecond) // a start that takes a moment, so starts overlap
				return &stubChild{done: make(chan struct{})}, nil
			},
		})
	}
	s, err := supervisor.New(supervisor.Spec{MaxConcurrentStarts: limit}, specs...)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, s.Start(ctx), "every child started")
	defer func() { _ = s.Stop(ctx) }()
	assert.LessOrEqual(t, peak.Load(), int64(limit))
	assert.Greater(t, peak.Load(), int64(1), "starts did run concurrently")
	running := 0
	for _, c := range s.Children() {
		if c.State == supervisor.Running {
			running++
		}
	}
	assert.Equal(t, n, running)
}
