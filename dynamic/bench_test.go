package dynamic_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/graft-host/graft/dynamic"
	"github.com/graft-host/graft/internal/benchprobe"
)

const (
	benchPayload = 64   // bytes per message
	benchBatch   = 32   // messages per batch
	benchActors  = 64   // concurrent actors (batches in flight)
	rawWindow    = 2048 // messages in flight on the raw stream
)

var payload64 = []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")[:benchPayload]

func benchModule(b *testing.B) *dynamic.Instance {
	cfg := config(b, "echo")
	cfg.Logger = discard()
	return start(b, cfg)
}

// BenchmarkHandlePipelined pushes messages through a real echo plugin
// process: benchActors actors each send batches of benchBatch messages back
// to back, so up to benchActors batches are in flight on the one stream.
func BenchmarkHandlePipelined(b *testing.B) { benchPipelined(b, benchBatch) }

// BenchmarkHandleSingles is HandlePipelined with batches of one message,
// what an actor that gets one message at a time sends: its CPU figures
// (self-cores for the host, plugin-cores for the plugin process) are the
// cost of one plugin round trip.
func BenchmarkHandleSingles(b *testing.B) { benchPipelined(b, 1) }

func benchPipelined(b *testing.B, benchBatch int) {
	m := benchModule(b)
	ctx := context.Background()
	batch := make([]dynamic.Message, benchBatch)
	for i := range batch {
		batch[i] = dynamic.Message{Seq: uint64(i), ID: fmt.Sprint("id-", i), Sender: "bench", Payload: payload64, Attempt: 1}
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	probe := benchprobe.Start(nil)
	t0 := time.Now()
	for a := range benchActors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			actor := fmt.Sprint("actor-", a)
			st := dynamic.State{Schema: 2, Data: []byte(`{}`)}
			for {
				n := left.Add(-int64(benchBatch))
				k := benchBatch
				if n < 0 {
					k += int(n)
				}
				if k <= 0 {
					return
				}
				res, err := m.Handle(ctx, dynamic.Batch{Actor: actor, State: st, Messages: batch[:k]})
				if err != nil {
					b.Error(err)
					return
				}
				st = res.State
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	probe.Report(b, 0)
}

// BenchmarkHandleLatency measures a batch's round trip at a fixed load:
// 400 batches/s of benchBatch messages (12,800 msgs/s), issued open-loop,
// each for its own actor.
func BenchmarkHandleLatency(b *testing.B) {
	const rate = 400
	m := benchModule(b)
	ctx := context.Background()
	batch := make([]dynamic.Message, benchBatch)
	for i := range batch {
		batch[i] = dynamic.Message{Seq: uint64(i), ID: fmt.Sprint("id-", i), Payload: payload64, Attempt: 1}
	}
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			_, err := m.Handle(ctx, dynamic.Batch{Actor: fmt.Sprint("actor-", i%1000), State: dynamic.State{Schema: 2, Data: []byte(`{}`)}, Messages: batch})
			lat[i] = time.Since(t0)
			if err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(float64(rate*benchBatch), "load-msgs/s")
}

// rawPlugin is the host side of testdata/rawstream: plain go-plugin, no
// graft code.
type rawPlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (rawPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }
func (rawPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return testpb.NewTestServiceClient(cc), nil
}

func rawClient(b *testing.B) testpb.TestServiceClient {
	c := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "RAWSTREAM_BENCH", MagicCookieValue: "raw"},
		Plugins:          plugin.PluginSet{"raw": rawPlugin{}},
		Cmd:              exec.Command(bin("rawstream")),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
	})
	b.Cleanup(c.Kill)
	rpc, err := c.Client()
	if err != nil {
		b.Fatal(err)
	}
	raw, err := rpc.Dispense("raw")
	if err != nil {
		b.Fatal(err)
	}
	return raw.(testpb.TestServiceClient)
}

// BenchmarkBaselineRawStream is the ceiling: a bare gRPC bidi stream through
// a go-plugin plugin (grpc's interop TestService, no graft code), one
// benchPayload-byte message per stream message, rawWindow in flight.
func BenchmarkBaselineRawStream(b *testing.B) {
	cl := rawClient(b)
	stream, err := cl.FullDuplexCall(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	window := make(chan struct{}, rawWindow)
	done := make(chan error, 1)
	b.ResetTimer()
	t0 := time.Now()
	go func() {
		for range b.N {
			if _, err := stream.Recv(); err != nil {
				done <- err
				return
			}
			<-window
		}
		done <- nil
	}()
	req := &testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: payload64}}
	for range b.N {
		window <- struct{}{}
		if err := stream.Send(req); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	el := time.Since(t0)
	b.StopTimer()
	_ = stream.CloseSend()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
}

// BenchmarkBaselineUnary is one go-plugin unary call per message from one
// caller: what a naive per-message RPC design would get.
func BenchmarkBaselineUnary(b *testing.B) {
	cl := rawClient(b)
	ctx := context.Background()
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: payload64}}
	b.ResetTimer()
	t0 := time.Now()
	for range b.N {
		if _, err := cl.UnaryCall(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
}
