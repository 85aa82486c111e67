package web

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/graft-host/graft/core/control/api"
)

// events streams the view as server-sent events: one "view" event at
// once and then every tick, each a whole View for the page, filter and
// sort the stream was opened with (?offset=&limit=&q=&sort=&desc=, and
// actor= for the actor a page looks at). It reads the API in process, as
// the page would, so what it shows is what the API answers; one read per
// tick serves every open stream, and at most maxStreams are open.
type events struct {
	api     http.Handler
	every   time.Duration
	streams chan struct{} // one slot per open stream

	mu   sync.Mutex // held while a snapshot is read: one read at a time
	snap *snapshot
	// rates are each actor's messages per second as of the last snapshot.
	rates map[string]actorRate
}

// actorRate is what the rate of one actor is computed from.
type actorRate struct {
	processed uint64
	rate      float64
}

// rateWindow is the time constant of the actors' rates: an exponentially
// weighted average, like a load average, so that a burst shows for a few
// ticks and a steady flow reads steady.
const rateWindow = 5 * time.Second

// maxStreams bounds the open event streams: each costs a goroutine and a
// copy of the page per tick.
const maxStreams = 32

// snapshot is one read of the API, shared by the streams.
type snapshot struct {
	at   time.Time
	st   api.Status
	rows []ActorRow // st.Actors with their rates
	hist []api.UpgradeRecord
}

// read returns a snapshot at most half a tick old, reading the API when
// the last one is older.
func (e *events) read(ctx context.Context) (*snapshot, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.snap != nil && time.Since(e.snap.at) < e.every/2 {
		return e.snap, nil
	}
	s := &snapshot{at: time.Now()}
	if err := e.get(ctx, "/v1/status", &s.st); err != nil {
		return nil, err
	}
	if err := e.get(ctx, "/v1/history", &s.hist); err != nil {
		return nil, err
	}
	slices.Reverse(s.hist)
	s.hist = s.hist[:min(len(s.hist), historyShown)]
	s.rows = e.withRates(s, e.snap)
	e.snap = s
	return s, nil
}

// withRates is s's actors with their rates, updated from the snapshot
// before (nil for the first). An actor whose count went down (it was
// restarted, or moved to another member) starts again from 0.
func (e *events) withRates(s, before *snapshot) []ActorRow {
	next := make(map[string]actorRate, len(s.st.Actors))
	rows := make([]ActorRow, len(s.st.Actors))
	var alpha, dt float64
	if before != nil {
		dt = s.at.Sub(before.at).Seconds()
		alpha = 1 - math.Exp(-dt/rateWindow.Seconds())
	}
	for i, a := range s.st.Actors {
		r := actorRate{processed: a.Processed}
		if old, ok := e.rates[a.Name]; ok && dt > 0 && a.Processed >= old.processed {
			now := float64(a.Processed-old.processed) / dt
			r.rate = old.rate + alpha*(now-old.rate)
		}
		next[a.Name] = r
		rows[i] = ActorRow{ActorStatus: a, Rate: r.rate}
	}
	e.rates = next
	return rows
}

// View is one event of the stream.
type View struct {
	Core     api.CoreInfo          `json:"core"`
	Upgrades []api.UpgradeProgress `json:"upgrades"`
	// Total is how many actors match the filter; Actors the page of them.
	Total      int         `json:"total"`
	Offset     int         `json:"offset"`
	Actors     []ActorRow  `json:"actors"`
	Behaviours []Behaviour `json:"behaviours"`
	// History is the last records, newest first.
	History []api.UpgradeRecord `json:"history"`
	// Focus is the actor the stream was opened for (actor=), wherever it
	// sorts.
	Focus *ActorRow `json:"focus,omitempty"`
}

// ActorRow is one actor as the view lists it: its status and its rate.
type ActorRow struct {
	api.ActorStatus
	// Rate is the messages it handled per second, averaged over about
	// rateWindow.
	Rate float64 `json:"rate"`
}

// Behaviour is one behaviour as the view shows it: its actors and the
// module versions they run.
type Behaviour struct {
	Name     string         `json:"name"`
	Actors   int            `json:"actors"`
	Versions map[string]int `json:"versions"` // module version -> actors on it
}

// query is a stream's page, filter and sort.
type query struct {
	offset, limit int
	q, sort       string
	desc          bool
	focus         string
}

const (
	defaultLimit = 100
	maxLimit     = 1000
	historyShown = 50
	// maxOffset is past any actor count a core holds (a billion).
	maxOffset = 1 << 30
)

func parseQuery(r *http.Request) query {
	v := r.URL.Query()
	q := query{limit: defaultLimit, q: strings.ToLower(v.Get("q")), sort: v.Get("sort"), desc: v.Get("desc") == "1", focus: v.Get("actor")}
	if n, err := strconv.Atoi(v.Get("offset")); err == nil && n > 0 {
		q.offset = min(n, maxOffset) // offset+limit must not overflow
	}
	if n, err := strconv.Atoi(v.Get("limit")); err == nil && n > 0 {
		q.limit = min(n, maxLimit)
	}
	return q
}

func (e *events) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	select {
	case e.streams <- struct{}{}:
		defer func() { <-e.streams }()
	default:
		refuse(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("the web view already serves %d live pages: close one", maxStreams))
		return
	}
	q := parseQuery(r)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	t := time.NewTicker(e.every)
	defer t.Stop()
	for {
		v, err := e.view(r.Context(), q)
		var payload []byte
		if err == nil {
			payload, err = json.Marshal(v)
		}
		if err != nil {
			payload, _ = json.Marshal(map[string]string{"error": err.Error()})
			fmt.Fprintf(w, "event: failure\ndata: %s\n\n", payload)
		} else {
			fmt.Fprintf(w, "event: view\ndata: %s\n\n", payload)
		}
		flusher.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

// view cuts the page of q out of the latest snapshot.
func (e *events) view(ctx context.Context, q query) (View, error) {
	s, err := e.read(ctx)
	if err != nil {
		return View{}, err
	}
	st := s.st
	v := View{Core: st.Core, Upgrades: st.Upgrades, Offset: q.offset, History: s.hist}
	v.Behaviours = behaviours(st.Actors)
	if q.focus != "" {
		if i := slices.IndexFunc(s.rows, func(a ActorRow) bool { return a.Name == q.focus }); i >= 0 {
			v.Focus = &s.rows[i]
		}
	}
	rows := slices.DeleteFunc(slices.Clone(s.rows), func(a ActorRow) bool { return !matches(a, q.q) })
	slices.SortStableFunc(rows, less(q.sort, q.desc))
	v.Total = len(rows)
	v.Actors = rows[min(q.offset, len(rows)):min(q.offset+q.limit, len(rows))]
	if v.Upgrades == nil {
		v.Upgrades = []api.UpgradeProgress{}
	}
	return v, nil
}

// get reads one API path in process.
func (e *events) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	rec := &recorder{header: http.Header{}}
	e.api.ServeHTTP(rec, req)
	if rec.status != 0 && rec.status != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, rec.status, strings.TrimSpace(rec.body.String()))
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// recorder is the ResponseWriter of an in-process API read.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.status = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }

func matches(a ActorRow, q string) bool {
	if q == "" {
		return true
	}
	for _, f := range []string{a.Name, a.Behaviour, a.Module, a.Status, a.Origin, a.Owner} {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	return false
}

// less orders actors by the named column (name by default), then name.
func less(col string, desc bool) func(a, b ActorRow) int {
	key := func(a, b ActorRow) int {
		switch col {
		case "behaviour":
			return strings.Compare(a.Behaviour, b.Behaviour)
		case "module":
			return strings.Compare(a.Module, b.Module)
		case "status":
			return strings.Compare(a.Status, b.Status)
		case "depth":
			return cmp.Compare(a.Depth, b.Depth)
		case "processed":
			return cmp.Compare(a.Processed, b.Processed)
		case "failed":
			return cmp.Compare(a.Failed, b.Failed)
		case "restarts":
			return cmp.Compare(a.Restarts+a.ModuleRestarts, b.Restarts+b.ModuleRestarts)
		case "dead":
			return cmp.Compare(a.DeadLetters, b.DeadLetters)
		case "rate":
			return cmp.Compare(a.Rate, b.Rate)
		case "owner":
			return strings.Compare(a.Owner, b.Owner)
		case "schema":
			return cmp.Compare(a.Schema, b.Schema)
		case "origin":
			return strings.Compare(a.Origin, b.Origin)
		}
		return 0 // "name", or a column it does not know: by name
	}
	return func(a, b ActorRow) int {
		c := cmp.Or(key(a, b), strings.Compare(a.Name, b.Name))
		if desc {
			c = -c
		}
		return c
	}
}

func behaviours(actors []api.ActorStatus) []Behaviour {
	by := map[string]*Behaviour{}
	for _, a := range actors {
		b := by[a.Behaviour]
		if b == nil {
			b = &Behaviour{Name: a.Behaviour, Versions: map[string]int{}}
			by[a.Behaviour] = b
		}
		b.Actors++
		b.Versions[cmp.Or(a.Module, "-")]++
	}
	out := make([]Behaviour, 0, len(by))
	for _, b := range by {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(x, y Behaviour) int { return strings.Compare(x.Name, y.Name) })
	return out
}
