package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/graft-host/graft/internal/testbin"
)

// otlpReceiver is an OTLP/HTTP trace receiver: what graft exports when
// OTEL_EXPORTER_OTLP_ENDPOINT points at it, decoded as a collector would.
type otlpReceiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	spans   []*tracepb.Span
	service map[string]bool // the service.name of every batch received
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{service: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
			http.NotFound(w, req)
			return
		}
		body, err := io.ReadAll(req.Body)
		var in coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &in)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range in.ResourceSpans {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					r.service[kv.GetValue().GetStringValue()] = true
				}
			}
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// inTrace are the spans received so far of the trace traceID (hex), by
// name.
func (r *otlpReceiver) inTrace(traceID string) map[string][]*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]*tracepb.Span{}
	for _, s := range r.spans {
		if hex.EncodeToString(s.TraceId) == traceID {
			out[s.Name] = append(out[s.Name], s)
		}
	}
	return out
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			if v := kv.GetValue().GetStringValue(); v != "" {
				return v
			}
			return strconv.FormatInt(kv.GetValue().GetIntValue(), 10)
		}
	}
	return ""
}

func seqOf(t *testing.T, s *tracepb.Span) int {
	n, err := strconv.Atoi(spanAttr(s, "graft.seq"))
	require.NoError(t, err)
	return n
}

// parentIs checks that child's parent span is parent.
func parentIs(t *testing.T, child, parent *tracepb.Span, what string) {
	t.Helper()
	assert.Equal(t, hex.EncodeToString(parent.SpanId), hex.EncodeToString(child.ParentSpanId), what)
}

// With the standard OTEL_* variables set, `graft run` exports its spans
// over OTLP: a traced script's `graft send` (TRACEPARENT) to ping, ping's
// send to pong and pong's send back to ping are one trace, each message's
// span the child of the one that sent it; `graft upgrade` is a trace of
// its stages and groups.
func TestRunExportsTracesAsTheEnvironmentSays(t *testing.T) {
	rcv := newOTLPReceiver(t)
	dir, src := kvSource(t)
	path := filepath.Join(dir, "graft.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`store: {path: ./data}
control: {dir: ./run}
behaviours:
  recorder: {binary: %s}
  kv: {binary: %s}
actors:
  - {name: ping, behaviour: recorder}
  - {name: pong, behaviour: recorder}
  - {name: k0, behaviour: kv}
  - {name: k1, behaviour: kv}
`, plugin("recorder"), src)), 0o644))
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.srv.URL, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_SERVICE_NAME=", "OTEL_TRACES_EXPORTER=", "OTEL_SDK_DISABLED="}
	p := startGraftBin(t, graftBin(), env, path, []string{"ping", "pong", "k0", "k1"})

	const script = "0af7651916cd43dd8448eb211c80319c" // the trace a script is in
	r := graft(t, "", []string{"TRACEPARENT=00-" + script + "-b7ad6b7169203331-01"},
		"send", "ping", "send:pong:send:ping:done", "--config", path)
	require.Equal(t, 0, r.code, r.stderr)
	testbin.WaitFor(t, 30*time.Second, "ping, pong and ping's spans exported", func() bool {
		return len(rcv.inTrace(script)["graft.handle"]) >= 3
	})
	spans := rcv.inTrace(script)
	require.Len(t, spans["graft.send"], 1)
	send := spans["graft.send"][0]
	assert.Equal(t, "b7ad6b7169203331", hex.EncodeToString(send.ParentSpanId), "graft send continues the script's trace")
	byActor := map[string][]*tracepb.Span{}
	for _, h := range spans["graft.handle"] {
		byActor[spanAttr(h, "graft.actor")] = append(byActor[spanAttr(h, "graft.actor")], h)
	}
	require.Len(t, byActor["ping"], 2)
	require.Len(t, byActor["pong"], 1)
	first, second, pong := byActor["ping"][0], byActor["ping"][1], byActor["pong"][0]
	if seqOf(t, first) > seqOf(t, second) {
		first, second = second, first
	}
	parentIs(t, first, send, "ping handles the CLI's send")
	parentIs(t, pong, first, "pong handles ping's send")
	parentIs(t, second, pong, "ping handles pong's send")
	assert.Equal(t, "recorder", spanAttr(pong, "graft.behaviour"))
	rcv.mu.Lock()
	assert.True(t, rcv.service["graft"], "service.name is graft: %v", rcv.service)
	rcv.mu.Unlock()

	// A TRACEPARENT that is no traceparent (here with a carriage return
	// and a header of its own, which HTTP cannot carry) is ignored with
	// one warning: the call is made, outside any trace.
	r = graft(t, "", []string{"TRACEPARENT=00-" + script + "-b7ad6b7169203331-01\r\nX-Evil: 1"},
		"call", "k0", "x", "--config", path)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "v1:1", strings.TrimSpace(r.stdout))
	assert.Equal(t, 1, strings.Count(r.stderr, "ignoring $TRACEPARENT"), r.stderr)

	const upgrade = "4bf92f3577b34da6a3ce929d0e0e4736"
	r = graft(t, "", []string{"TRACEPARENT=00-" + upgrade + "-00f067aa0ba902b7-01"},
		"upgrade", "kv", "--binary", plugin("kv2"), "--config", path)
	require.Equal(t, 0, r.code, r.stderr)
	testbin.WaitFor(t, 30*time.Second, "the upgrade's span exported", func() bool {
		return len(rcv.inTrace(upgrade)["graft.upgrade"]) == 1
	})
	up := rcv.inTrace(upgrade)
	op := up["graft.upgrade"][0]
	assert.Equal(t, "00f067aa0ba902b7", hex.EncodeToString(op.ParentSpanId))
	assert.Equal(t, "kv", spanAttr(op, "graft.behaviour"))
	assert.Equal(t, "completed", spanAttr(op, "graft.upgrade.outcome"))
	assert.Contains(t, spanAttr(op, "graft.upgrade.to"), "2.0.0")
	for _, stage := range []string{"graft.upgrade.load", "graft.upgrade.check", "graft.upgrade.journal", "graft.upgrade.move"} {
		require.Len(t, up[stage], 1, stage)
		parentIs(t, up[stage][0], op, stage+" is a stage of the op")
	}
	require.Len(t, up["graft.upgrade.group"], 1, "two actors move in one group")
	group := up["graft.upgrade.group"][0]
	parentIs(t, group, up["graft.upgrade.move"][0], "the group is part of the move")
	assert.Equal(t, "2", spanAttr(group, "graft.upgrade.group.moved"))
	p.stop(t)
}

// A collector that takes connections and never answers loses the last
// spans, with a warning, and nothing else: the stop is clean (exit 0), in
// the grace period, and the messages are kept.
func TestStopWithASilentCollectorIsClean(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	var held []net.Conn // accepted and never read from
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	path := kvSourceConfig(t, "\n  - {name: k0, behaviour: kv}")
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + l.Addr().String(), "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_BSP_SCHEDULE_DELAY=60000", "OTEL_SERVICE_NAME=", "OTEL_TRACES_EXPORTER=", "OTEL_SDK_DISABLED="}
	p := startGraftBin(t, graftBin(), env, path, []string{"k0"})
	assert.Equal(t, "v1:1", p.ok(t, "call", "k0", "x"))
	p.stop(t) // exit 0 required
	assert.Contains(t, p.logs.String(), "could not be sent to the collector", "the spans lost are said in the log")
	assert.NotContains(t, p.logs.String(), "graceful shutdown did not finish")

	p = startGraftBin(t, graftBin(), nil, path, []string{"k0"})
	assert.Equal(t, "v1:2", p.ok(t, "call", "k0", "x"), "the state was kept")
	p.stop(t)
}
