// Command benchdoc turns the output of scripts/bench.sh's `go test -bench`
// runs into docs/BENCHMARKS.md: each figure beside its baseline from the
// same run and the ratio, with the machine, the date and the commands. The
// notes after the marker line of the existing file are kept as they are,
// so the machine-independent prose survives every regeneration.
//
//	benchdoc --in DIR --out docs/BENCHMARKS.md --commands FILE
//
// DIR holds one *.txt file of raw `go test -bench` output per run.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// marker separates the generated figures from the kept notes.
const marker = "<!-- Everything below this line is kept by scripts/bench.sh; the figures above are regenerated. -->"

// results maps benchmark name (without the -GOMAXPROCS suffix) and unit to
// the values of every run of it.
type results map[string]map[string][]float64

func (r results) get(bench, unit string) (float64, bool) {
	v := r[bench][unit]
	if len(v) == 0 {
		return 0, false
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2], true // median of the runs
}

func parse(dir string) (results, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	res := results{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		sc := bufio.NewScanner(fh)
		pending := "" // a benchmark whose figures a log line pushed onto a later line
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 0 && strings.HasPrefix(fields[0], "Benchmark") {
				if _, err := strconv.Atoi(fieldOr(fields, 1)); err != nil {
					pending = fields[0]
					continue
				}
			} else if _, err := strconv.Atoi(fieldOr(fields, 0)); err == nil && pending != "" && fieldOr(fields, 2) == "ns/op" {
				fields = append([]string{pending}, fields...)
			}
			if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
				continue
			}
			pending = ""
			name := fields[0]
			if i := strings.LastIndexByte(name, '-'); i > 0 {
				name = name[:i]
			}
			if res[name] == nil {
				res[name] = map[string][]float64{}
			}
			for i := 2; i+1 < len(fields); i += 2 {
				v, err := strconv.ParseFloat(fields[i], 64)
				if err != nil {
					continue
				}
				res[name][fields[i+1]] = append(res[name][fields[i+1]], v)
			}
		}
		fh.Close()
	}
	return res, nil
}

func fieldOr(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

// row is one figure of the document.
type row struct {
	figure, bench, unit string
	// baseline bench and unit; "" for none. For latency rows the baseline
	// unit "unary-ms" is derived from BaselineUnary's msgs/s.
	base, baseUnit string
	target         string
}

type section struct {
	title, note string
	rows        []row
}

var sections = []section{
	{"Store (mailbox/pebblestore)", "16 producers over 64 actors, 128-byte messages. Baseline: raw pebble synced `Set` at the same concurrency.", []row{
		{"durable enqueue throughput (EnqueueDurable)", "BenchmarkEnqueueDurable", "msgs/s", "BenchmarkBaselineEngineSync", "msgs/s", ">= 0.7"},
		{"durable enqueue latency p50", "BenchmarkEnqueueDurable", "p50-ms", "BenchmarkBaselineEngineSync", "p50-ms", ""},
		{"durable enqueue latency p99", "BenchmarkEnqueueDurable", "p99-ms", "BenchmarkBaselineEngineSync", "p99-ms", ""},
		{"relaxed enqueue throughput (EnqueueRelaxed)", "BenchmarkEnqueueRelaxed", "msgs/s", "BenchmarkBaselineEngineSync", "msgs/s", ""},
		{"read + commit ack+state, sync (Commit)", "BenchmarkCommit", "msgs/s", "BenchmarkBaselineEngineSync", "msgs/s", ""},
		{"read + commit ack+state, relaxed (CommitRelaxed)", "BenchmarkCommitRelaxed", "msgs/s", "BenchmarkBaselineEngineSync", "msgs/s", ""},
		{"space after 1M enqueue+ack cycles, peak (SpaceReclaim)", "BenchmarkSpaceReclaim", "peak-MiB", "", "", ""},
		{"space after 1M enqueue+ack cycles, final (SpaceReclaim)", "BenchmarkSpaceReclaim", "final-MiB", "", "", ""},
	}},
	{"Plugin host (dynamic)", "Real plugin processes over go-plugin's gRPC transport, 64-byte payloads. Baselines: grpc's raw bidirectional stream through a plain go-plugin plugin, and one go-plugin unary call per message.", []row{
		{"pipelined handle throughput (HandlePipelined)", "BenchmarkHandlePipelined", "msgs/s", "BenchmarkBaselineRawStream", "msgs/s", ">= 0.5"},
		{"one-message batches (HandleSingles)", "BenchmarkHandleSingles", "msgs/s", "BenchmarkBaselineRawStream", "msgs/s", ""},
		{"one-message batches: CPU of the host, cores (HandleSingles)", "BenchmarkHandleSingles", "self-cores", "", "", ""},
		{"one-message batches: CPU of the plugin, cores (HandleSingles)", "BenchmarkHandleSingles", "plugin-cores", "", "", ""},
		{"raw go-plugin unary calls (BaselineUnary)", "BenchmarkBaselineUnary", "msgs/s", "", "", ""},
		{"32-message batch latency p50, open loop (HandleLatency)", "BenchmarkHandleLatency", "p50-ms", "BenchmarkBaselineUnary", "unary-ms", ""},
		{"32-message batch latency p99, open loop (HandleLatency)", "BenchmarkHandleLatency", "p99-ms", "BenchmarkBaselineUnary", "unary-ms", ""},
	}},
	{"Core end to end (core, internal/chaos)", "Send, handled by a real plugin, committed; 64 actors of one behaviour, 16 producers. Baseline: the raw engine's synced writes with the same producers and payloads, run in the same command right before (E2EBaselineEngineSync).", []row{
		{"end-to-end durable throughput, 64 actors (EndToEndDurable)", "BenchmarkEndToEndDurable", "msgs/s", "BenchmarkE2EBaselineEngineSync", "msgs/s", ">= 0.7"},
		{"end-to-end relaxed throughput, 64 actors (EndToEndRelaxed)", "BenchmarkEndToEndRelaxed", "msgs/s", "BenchmarkE2EBaselineEngineSync", "msgs/s", ""},
		{"end-to-end durable: one fsync round, ms (EndToEndDurable)", "BenchmarkEndToEndDurable", "fsync-ms", "BenchmarkE2EBaselineEngineSync", "fsync-ms", ""},
		{"end-to-end durable: engine writes per fsync round", "BenchmarkEndToEndDurable", "writes/fsync", "BenchmarkE2EBaselineEngineSync", "writes/fsync", ""},
		{"end-to-end durable: messages per commit", "BenchmarkEndToEndDurable", "msgs/commit", "", "", ""},
		{"end-to-end durable: CPU of the core process, cores", "BenchmarkEndToEndDurable", "self-cores", "BenchmarkE2EBaselineEngineSync", "self-cores", ""},
		{"end-to-end durable: CPU of the plugin process, cores", "BenchmarkEndToEndDurable", "plugin-cores", "", "", ""},
		{"ping-pong round trip p50 (PingPong, internal/chaos's ping-pong behaviour)", "BenchmarkPingPong", "p50-ms", "BenchmarkBaselineUnary", "unary-ms", ""},
		{"ping-pong round trip p99 (PingPong, internal/chaos's ping-pong behaviour)", "BenchmarkPingPong", "p99-ms", "BenchmarkBaselineUnary", "unary-ms", ""},
		{"start-up of 100,000 actors, ms (Start100kActors)", "BenchmarkStart100kActors", "start-ms", "", "", ""},
		{"memory of 100,000 actors, heap MiB (Start100kActors)", "BenchmarkStart100kActors", "heap-MiB", "", "", ""},
		{"memory of 100,000 actors, RSS MiB (Start100kActors)", "BenchmarkStart100kActors", "rss-MiB", "", "", ""},
	}},
	{"Actors made at run time, timers (core)", "The counter behaviour. VirtualFirstSend: 100,000 first sends, each creating a virtual actor in its message's write, beside 100,000 ordinary durable sends in the same run (16 producers each). Timers: 100,000 timers set from outside over 64 actors, pending while 2,000 more come due at 500/s (idle-core lateness), then paced at 10,000/s, then all due at once. MillionActors: 1,000,000 actors of a behaviour with passivate_after, registered by a first core; a second core on the same store is measured (start, RSS once 1% are active, the first message to a passive actor against a second message to the same, now active, actor).", []row{
		{"first send to a new virtual actor (VirtualFirstSend)", "BenchmarkVirtualFirstSend", "first-sends/s", "BenchmarkVirtualFirstSend", "ordinary-sends/s", ">= 0.8"},
		{"first send to a new virtual actor, one sender, latency p50 (VirtualFirstSend)", "BenchmarkVirtualFirstSend", "first-p50-ms", "BenchmarkVirtualFirstSend", "ordinary-p50-ms", "<= 1.25 (0.8x)"},
		{"timer lateness p99 on an idle core, 100,000 pending, ms (Timers)", "BenchmarkTimers", "lateness-p99-ms", "", "", "< 20"},
		{"timers due at 10,000/s (the core's durable pace): lateness p99, ms (Timers)", "BenchmarkTimers", "lateness-10k-p99-ms", "", "", ""},
		{"timers all due at once: firing rate (Timers)", "BenchmarkTimers", "fired/s", "BenchmarkE2EBaselineEngineSync", "msgs/s", ""},
		{"restart with 100,000 timers pending, ms (Timers)", "BenchmarkTimers", "restart-ms", "", "", "< 2000"},
		{"restart with 1,000,000 registered actors, ms (MillionActors)", "BenchmarkMillionActors", "start-ms", "", "", "< 5000"},
		{"memory of 1,000,000 actors, RSS MiB (MillionActors)", "BenchmarkMillionActors", "rss-MiB", "", "", "< 1024"},
		{"first message to a passive actor, p99 ms (MillionActors)", "BenchmarkMillionActors", "activate-p99-ms", "BenchmarkMillionActors", "send-p99-ms", "< 5 + one round trip"},
	}},
	{"Upgrade (upgrade)", "Worst of 3 runs. No raw baseline exists for an upgrade; the max gap stands beside the longest gap of the same load over a window as long just before the binary is written (the machine's own hiccups); compare the rest with the plugin round trip above.", []row{
		{"upgrade under load: max gap between answers from the binary's write, ms (UpgradeUnderLoad)", "BenchmarkUpgradeUnderLoad", "max-gap-ms", "BenchmarkUpgradeUnderLoad", "steady-max-gap-ms", "< 10"},
		{"upgrade under load: p99 added latency, ms (UpgradeUnderLoad)", "BenchmarkUpgradeUnderLoad", "p99-added-ms", "", "", "< 5"},
		{"upgrade under load: per-actor pause p99, ms (UpgradeUnderLoad)", "BenchmarkUpgradeUnderLoad", "pause-p99-ms", "", "", "< 2"},
		{"upgrade under load: of the pause, the drain of the batch in flight, p99 ms (UpgradeUnderLoad)", "BenchmarkUpgradeUnderLoad", "drain-p99-ms", "", "", ""},
		{"upgrade under load: of the pause, the rest (held after the drain), p99 ms (UpgradeUnderLoad)", "BenchmarkUpgradeUnderLoad", "held-p99-ms", "", "", ""},
		{"binary written to serving, ms (UpgradeUnderLoad)", "BenchmarkUpgradeUnderLoad", "written-to-serving-ms", "", "", "< 200"},
		{"1,000-actor upgrade, total ms (Upgrade1000Actors)", "BenchmarkUpgrade1000Actors", "total-ms", "", "", ""},
		{"1,000-actor upgrade, max per-actor pause ms (Upgrade1000Actors)", "BenchmarkUpgrade1000Actors", "max-pause-ms", "", "", ""},
		{"10,000-actor upgrade under load, total ms (Upgrade10kActors)", "BenchmarkUpgrade10kActors", "total-ms", "", "", "< 2000"},
		{"10,000-actor upgrade under load, max per-actor pause ms (Upgrade10kActors)", "BenchmarkUpgrade10kActors", "max-pause-ms", "", "", "< 10"},
		{"dry run of 1,000 actors with 16 kept messages each, ms (DryRunUnderLoad)", "BenchmarkDryRunUnderLoad", "dry-run-ms", "", "", ""},
		{"dry run under load: p99 added latency, ms (DryRunUnderLoad)", "BenchmarkDryRunUnderLoad", "p99-added-ms", "", "", "bounded; measured"},
	}},
	{"Cluster on etcd (core, cmd/graft)", "EtcdEndToEnd: EndToEndDurable's load (64 actors, 16 producers, 128-byte messages, a real plugin) on the etcd store, an embedded 3-member cluster; baseline (EtcdBaselineTxn): on a fresh cluster of the same shape, the raw etcd writes of the same shape at the same concurrency, a put of the message then a transaction of ack, state and an outgoing message guarded by an epoch compare. ClusterFailover and ClusterHandoff: real graft cores on one etcd member, lease_ttl 2s: kill -9 of an owner to its actor's first reply through another member; a member joining while each actor is called in a loop, the longest gap between two replies of an actor that moved, beside the longest gap before the join.", []row{
		{"end-to-end durable throughput on a 3-member etcd cluster (EtcdEndToEnd)", "BenchmarkEtcdEndToEnd", "msgs/s", "BenchmarkEtcdBaselineTxn", "msgs/s", ">= 0.7"},
		{"on etcd: messages per commit (EtcdEndToEnd)", "BenchmarkEtcdEndToEnd", "msgs/commit", "", "", ""},
		{"failover after kill -9 of an owner, ms (ClusterFailover)", "BenchmarkClusterFailover", "failover-ms", "BenchmarkClusterFailover", "lease-ms", "< lease + 1 s"},
		{"handoff pause when a member joins, ms (ClusterHandoff)", "BenchmarkClusterHandoff", "handoff-pause-ms", "BenchmarkClusterHandoff", "steady-gap-ms", "< 50"},
	}},
	{"Recovery (internal/chaos)", "A child fills a store with 1,000,000 queued 128-byte messages (relaxed, 16 actors) and is killed with SIGKILL; the clock runs from opening the store and starting a core until the first message is handled and committed.", []row{
		{"recovery after kill -9 with 1M queued: store open, ms (Recovery1M)", "BenchmarkRecovery1M", "open-ms", "", "", ""},
		{"recovery after kill -9 with 1M queued: first message handled, ms (Recovery1M)", "BenchmarkRecovery1M", "first-handled-ms", "", "", "< 2000"},
	}},
}

func num(v float64) string {
	switch {
	case v >= 1000:
		s := strconv.FormatFloat(v, 'f', 0, 64)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

func (r results) baseline(bench, unit string) (float64, bool) {
	if unit == "unary-ms" {
		rate, ok := r.get(bench, "msgs/s")
		if !ok || rate == 0 {
			return 0, false
		}
		return 1000 / rate, true
	}
	return r.get(bench, unit)
}

func render(res results, commands, notes, machine string) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Generated by `scripts/bench.sh`; do not edit the figures by hand (the notes\nat the end are kept). Every figure stands beside a baseline measured in the\nsame run, because the machine is shared and absolute times drift: compare\nratios, not raw numbers. For throughput the ratio is figure / baseline\n(higher is better); for latencies it is figure / baseline (lower is better).\n\n")
	fmt.Fprintf(&b, "Machine: %s; measured %s.\n\n", machine, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	b.WriteString("Commands (run by `scripts/bench.sh`, one package at a time, `-p 1`):\n\n```sh\n" + strings.TrimSpace(commands) + "\n```\n")
	for _, s := range sections {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n| figure | value | baseline (same run) | ratio | target |\n|---|---|---|---|---|\n", s.title, s.note)
		for _, rw := range s.rows {
			v, ok := res.get(rw.bench, rw.unit)
			if !ok {
				fmt.Fprintf(&b, "| %s | not measured (TODO) | | | %s |\n", rw.figure, rw.target)
				continue
			}
			val := num(v) + " " + rw.unit
			base, ratio := "", ""
			if rw.base != "" {
				if bv, ok := res.baseline(rw.base, rw.baseUnit); ok {
					label := strings.TrimPrefix(rw.base, "Benchmark")
					if rw.baseUnit == "unary-ms" {
						base = fmt.Sprintf("%s ms (one %s call)", num(bv), label)
					} else {
						base = fmt.Sprintf("%s %s (%s)", num(bv), rw.baseUnit, label)
					}
					if bv != 0 {
						ratio = fmt.Sprintf("**%.2f**", v/bv)
					}
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", rw.figure, val, base, ratio, rw.target)
		}
	}
	b.WriteString("\n" + marker + "\n")
	b.WriteString(notes)
	return b.String()
}

func main() {
	in := flag.String("in", "", "folder of raw go test -bench outputs (*.txt)")
	out := flag.String("out", "docs/BENCHMARKS.md", "the document to rewrite")
	cmds := flag.String("commands", "", "file listing the commands that were run")
	flag.Parse()
	if err := run(*in, *out, *cmds); err != nil {
		fmt.Fprintln(os.Stderr, "benchdoc:", err)
		os.Exit(1)
	}
}

func run(in, out, cmdsFile string) error {
	res, err := parse(in)
	if err != nil {
		return err
	}
	commands, err := os.ReadFile(cmdsFile)
	if err != nil {
		return fmt.Errorf("read the commands: %w", err)
	}
	notes := ""
	if old, err := os.ReadFile(out); err == nil {
		if _, tail, ok := strings.Cut(string(old), marker+"\n"); ok {
			notes = tail
		} else {
			fmt.Fprintf(os.Stderr, "benchdoc: %s has no notes marker; no notes kept\n", out)
		}
	}
	doc := render(res, string(commands), notes, machine())
	if err := os.WriteFile(out+".tmp", []byte(doc), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return fmt.Errorf("replace %s: %w", out, err)
	}
	return nil
}

// machine describes the host: cores, CPU model, memory, Go version.
func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if kb, err := strconv.Atoi(f[1]); err == nil {
				mem = fmt.Sprintf(", %d GiB", (kb+(1<<19))>>20)
			}
		}
	}
	s := fmt.Sprintf("%d cores", runtime.NumCPU())
	if model != "" {
		s += " (" + model + ")"
	}
	return s + mem + ", " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}
