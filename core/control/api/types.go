package api

import "time"

// DefaultCallTimeout bounds a call whose request names no timeout
// (CallRequest.TimeoutMS 0): the core gives up waiting for the reply then,
// and the message stays queued.
const DefaultCallTimeout = 30 * time.Second

// CoreInfo identifies the core answering on the socket (GET /v1/core).
type CoreInfo struct {
	PID     int       `json:"pid"`
	Socket  string    `json:"socket"`
	Config  string    `json:"config,omitempty"`
	Started time.Time `json:"started"`
	// Version, Commit and GoVersion say which graft the core is (from
	// the binary's build information; `graft version` prints them).
	Version   string `json:"version,omitempty"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"go_version,omitempty"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	Core   CoreInfo      `json:"core"`
	Actors []ActorStatus `json:"actors"`
	// Upgrades are the upgrades, rollbacks and dry runs in progress.
	Upgrades []UpgradeProgress `json:"upgrades"`
	// Members, in a cluster, are its live members.
	Members []MemberStatus `json:"members,omitempty"`
	// Waiting, set while the core has not started, says why it holds no
	// actors yet (its store does not answer) and what it is doing about
	// it; every other endpoint answers 503 with the same words.
	Waiting string `json:"waiting,omitempty"`
}

// ActorStatus is one actor's row: the core's ActorStatus in stable JSON
// names, with durations in seconds.
type ActorStatus struct {
	Name           string  `json:"name"`
	Behaviour      string  `json:"behaviour"`
	Module         string  `json:"module"`
	Schema         uint32  `json:"schema"`
	Status         string  `json:"status"`
	Depth          uint64  `json:"depth"`
	InFlight       int64   `json:"in_flight"`
	Processed      uint64  `json:"processed"`
	Failed         uint64  `json:"failed"`
	Restarts       int     `json:"restarts"`
	ModuleRestarts int     `json:"module_restarts"`
	DeadLetters    uint64  `json:"dead_letters"`
	LastExit       string  `json:"last_exit,omitempty"`
	PID            int     `json:"pid,omitempty"`
	UptimeSeconds  float64 `json:"uptime_seconds"`
	LastError      string  `json:"last_error,omitempty"`
	// Origin says how the actor came to exist: "config" (listed in the
	// config), "spawn" (graft spawn, or a handler's ctx.Spawn) or
	// "virtual" (created by the first message to a name its virtual
	// behaviour owns). Empty from a core older than run-time actors.
	Origin string `json:"origin,omitempty"`
	// Owner, in a cluster, is the member that runs the actor.
	Owner string `json:"owner,omitempty"`
}

// MemberStatus is one live member of a cluster of cores.
type MemberStatus struct {
	Name   string    `json:"name"`
	Pid    int       `json:"pid"`
	Socket string    `json:"socket,omitempty"`
	Since  time.Time `json:"since"`
	// Actors is how many actors it owns.
	Actors int `json:"actors"`
	// Self marks the member that answered.
	Self bool `json:"self,omitempty"`
}

// SendRequest is the body of send; Text is a convenience for UTF-8
// payloads (used when Payload is empty).
type SendRequest struct {
	Payload []byte `json:"payload,omitempty"`
	Text    string `json:"text,omitempty"`
	// ID makes the send idempotent: a retry with the same id enqueues nothing.
	ID string `json:"id,omitempty"`
	// Sender labels the sender (default "client").
	Sender string `json:"sender,omitempty"`
	// AfterSeconds or At (not both) make the send a durable timer: the
	// message is delivered once, as an ordinary message carrying the
	// timer's id, that many seconds from now (0: at once) or at that
	// time (one in the past fires at once). With ID, a retry while that
	// timer is pending sets no other and answers the same timer id. Sender
	// goes with neither (the message arrives from no actor); call refuses
	// both.
	AfterSeconds *float64  `json:"after_seconds,omitempty"`
	At           time.Time `json:"at,omitzero"`
}

// Scheduled says whether the request sets a timer rather than enqueueing
// the message now.
func (r SendRequest) Scheduled() bool { return r.AfterSeconds != nil || !r.At.IsZero() }

// Body is the message the request carries: Payload, or Text when Payload
// is empty. The server enqueues exactly these bytes.
func (r SendRequest) Body() []byte {
	if len(r.Payload) > 0 {
		return r.Payload
	}
	return []byte(r.Text)
}

// SendResponse is the store's receipt for a send.
type SendResponse struct {
	Actor     string `json:"actor"`
	ID        string `json:"id,omitempty"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
	// Outcome is pending, applied, replied, refused or dead-lettered.
	Outcome string `json:"outcome"`
	// Reply is the committed reply (base64 in JSON); Text is the same
	// reply when it is valid UTF-8.
	Reply []byte `json:"reply,omitempty"`
	Text  string `json:"text,omitempty"`
	// Error is the refusal (outcome refused) or the last error
	// (outcome dead-lettered).
	Error string `json:"error,omitempty"`
	// TimerID and Due answer a scheduled send (outcome "scheduled", Seq
	// 0): the timer's id, as `graft timers` lists it, and when it fires.
	TimerID string    `json:"timer_id,omitempty"`
	Due     time.Time `json:"due,omitzero"`
}

// OutcomeScheduled is SendResponse.Outcome for a send that set a timer.
const OutcomeScheduled = "scheduled"

// CallRequest is the body of call.
type CallRequest struct {
	SendRequest
	// TimeoutMS bounds the wait for the reply (default 30000).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// CallResponse carries the handler's reply and the id it was made under,
// so a caller that timed out can retry with the same id.
//
// A refusal (the handler's terminal error) is the call's outcome, not a
// failure of the API: it comes with status 200, Refused set and Error
// holding the handler's text; a retry with the same id gets it again.
type CallResponse struct {
	Actor string `json:"actor"`
	ID    string `json:"id"`
	// Reply is the handler's reply (base64 in JSON); Text is the same
	// reply when it is valid UTF-8.
	Reply   []byte `json:"reply"`
	Text    string `json:"text,omitempty"`
	Refused bool   `json:"refused,omitempty"`
	Error   string `json:"error,omitempty"`
}

// ActorResponse acknowledges stop, start and destroy.
type ActorResponse struct {
	Actor  string `json:"actor"`
	Action string `json:"action"`
}

// SpawnRequest is the body of spawn: the behaviour that drives the new
// actor, and an optional first message, as Init (base64) or, for UTF-8,
// InitText (used when Init is empty), queued in the write that creates it.
type SpawnRequest struct {
	Behaviour string `json:"behaviour"`
	Init      []byte `json:"init,omitempty"`
	InitText  string `json:"init_text,omitempty"`
}

// InitMessage is the first message the request carries: Init, or
// InitText when Init is empty; nil for none.
func (r SpawnRequest) InitMessage() []byte {
	switch {
	case len(r.Init) > 0:
		return r.Init
	case r.InitText != "":
		return []byte(r.InitText)
	}
	return nil
}

// SpawnResponse answers spawn. Created is false when an actor of that name
// already existed with that behaviour: nothing was changed (and no first
// message queued), so a retried spawn spawns once.
type SpawnResponse struct {
	Actor     string `json:"actor"`
	Behaviour string `json:"behaviour"`
	Created   bool   `json:"created"`
}

// Timer is one pending timer (GET /v1/actors/{actor}/timers): one the
// actor set from a handler (Owner is the actor), or a send scheduled to it
// with `graft send --after` (Owner empty). To receives its message at Due.
type Timer struct {
	ID    string    `json:"id"`
	Owner string    `json:"owner,omitempty"`
	To    string    `json:"to"`
	Due   time.Time `json:"due"`
	// Payload is the message it delivers (base64 in JSON); Text is the
	// same bytes when they are valid UTF-8; Size is len(Payload).
	Payload []byte `json:"payload"`
	Text    string `json:"text,omitempty"`
	Size    int    `json:"size"`
}

// DeadLetter is one dead-lettered message.
type DeadLetter struct {
	Seq        uint64    `json:"seq"`
	ID         string    `json:"id,omitempty"`
	Sender     string    `json:"sender"`
	Payload    []byte    `json:"payload"`
	Attempts   uint32    `json:"attempts"`
	LastError  string    `json:"last_error"`
	EnqueuedAt time.Time `json:"enqueued_at"`
	DeadAt     time.Time `json:"dead_at"`
}

// Messages are an actor's messages as an operator looks at them: those
// waiting in its mailbox and the last it handled.
type Messages struct {
	// Queued are the first messages waiting, oldest first (at most
	// MessagesShown; Depth counts them all).
	Queued []QueuedMessage `json:"queued"`
	Depth  uint64          `json:"depth"`
	// Handled are the last messages it handled, newest first, with what
	// the handler answered: kept only for a behaviour with verify_window
	// (at most that many), empty otherwise.
	Handled []HandledMessage `json:"handled"`
}

// MessagesShown bounds Messages.Queued.
const MessagesShown = 50

// PayloadPreview is how many bytes of each payload and reply Messages
// carries: enough to tell messages apart on a page that polls it, however
// large they are (`graft deadletters` and the store keep them whole).
const PayloadPreview = 256

// QueuedMessage is one message waiting in a mailbox.
type QueuedMessage struct {
	Seq    uint64 `json:"seq"`
	ID     string `json:"id,omitempty"`
	Sender string `json:"sender"`
	// Payload is the payload's first PayloadPreview bytes; PayloadSize
	// its length.
	Payload     []byte    `json:"payload"`
	PayloadSize int       `json:"payload_size"`
	EnqueuedAt  time.Time `json:"enqueued_at"`
	// Attempts and LastError tell of the failed tries so far.
	Attempts  uint32 `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
	TimerID   string `json:"timer_id,omitempty"`
}

// HandledMessage is one message an actor handled, as its kept window
// (verify_window) holds it.
type HandledMessage struct {
	Seq    uint64 `json:"seq"`
	ID     string `json:"id,omitempty"`
	Sender string `json:"sender"`
	// Payload and Reply are cut to PayloadPreview bytes, as in
	// QueuedMessage; their Sizes are their lengths.
	Payload     []byte `json:"payload"`
	PayloadSize int    `json:"payload_size"`
	// Reply is what a call got, when the handler replied; Refusal its
	// terminal error, when it refused.
	Reply     []byte `json:"reply,omitempty"`
	ReplySize int    `json:"reply_size,omitempty"`
	Refusal   string `json:"refusal,omitempty"`
	// Sends counts the messages the handler sent.
	Sends int `json:"sends"`
}

// RetryRequest names the dead letters to move back into the mailbox: one
// by Seq or by message ID, or All of them.
type RetryRequest struct {
	Seq uint64 `json:"seq,omitempty"`
	ID  string `json:"id,omitempty"`
	All bool   `json:"all,omitempty"`
}

// Requeued is one retried dead letter: its old and new sequence numbers.
type Requeued struct {
	Seq    uint64 `json:"seq"`
	NewSeq uint64 `json:"new_seq"`
	ID     string `json:"id,omitempty"`
}

// RetryResponse lists what was requeued.
type RetryResponse struct {
	Actor    string     `json:"actor"`
	Requeued []Requeued `json:"requeued"`
}

// StateResponse is an actor's committed state (GET
// /v1/actors/{actor}/state), for an operator deciding whether to repair it.
type StateResponse struct {
	Actor     string `json:"actor"`
	Behaviour string `json:"behaviour"`
	// Module is the code version of the module that wrote the state ("" if
	// none has yet); Schema is the state schema version of Data.
	Module string `json:"module"`
	Schema uint32 `json:"schema"`
	// Size is len(Data) in bytes.
	Size int `json:"size"`
	// Empty says there is no state: the actor's next message runs Init.
	Empty bool `json:"empty"`
	// Encoding says what Data looks like: "json", "text" (UTF-8, not
	// JSON), "binary", or "none" when Empty.
	Encoding string `json:"encoding"`
	// Data is the state's bytes (base64 in JSON); Text is the same bytes
	// when they are valid UTF-8.
	Data []byte `json:"data"`
	Text string `json:"text,omitempty"`
}

// StateRequest is the body of PUT /v1/actors/{actor}/state: the new state
// as Data (base64) or, for UTF-8, as Text (used when Data is empty).
type StateRequest struct {
	Data []byte `json:"data,omitempty"`
	Text string `json:"text,omitempty"`
	// Schema is the state schema version of the new state; omitted, the
	// schema the actor's module reads.
	Schema *uint32 `json:"schema,omitempty"`
}

// Body is the new state the request carries: Data, or Text when Data is
// empty. The server commits exactly these bytes.
func (r StateRequest) Body() []byte {
	if len(r.Data) > 0 {
		return r.Data
	}
	return []byte(r.Text)
}

// StateSummary describes a state without its bytes: what a repair changed.
type StateSummary struct {
	Module string `json:"module"`
	Schema uint32 `json:"schema"`
	Size   int    `json:"size"`
	Empty  bool   `json:"empty"`
}

// RepairResponse is the answer of a state repair (PUT
// /v1/actors/{actor}/state, POST /v1/actors/{actor}/state/reset): the state
// before and after, and the history record that keeps it.
type RepairResponse struct {
	Actor string `json:"actor"`
	// Action is "replace" or "reset".
	Action string        `json:"action"`
	Old    StateSummary  `json:"old"`
	New    StateSummary  `json:"new"`
	Record UpgradeRecord `json:"record"`
}

// UpgradeRecord is one upgrade, rollback or state repair as the API shows
// it (GET /v1/history, and the answer of upgrade and rollback): the store's
// record in the API's JSON style, like Status: snake_case names, durations
// in seconds, times in RFC 3339.
type UpgradeRecord struct {
	ID        uint64    `json:"id"`
	Kind      string    `json:"kind"` // upgrade, rollback or repair (of one actor's state)
	Behaviour string    `json:"behaviour"`
	From      string    `json:"from"` // module versions, e.g. "1.0.0 (3f2a9c1b)"; for a repair, the state
	To        string    `json:"to"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended,omitzero"`
	// DurationSeconds is Ended - Started.
	DurationSeconds float64 `json:"duration_seconds"`
	// Outcome is "completed", "rolled back", "failed", ...; Error says why
	// it did not complete.
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// Actors is how many distinct actors the steps moved (an actor moved
	// and moved back counts once).
	Actors int           `json:"actors"`
	Steps  []UpgradeStep `json:"steps"`
	// Canary, for a canary upgrade, is its group and bake and what
	// decided, with the numbers (e.g. "10% for 1m0s: promoted: ...").
	Canary string `json:"canary,omitempty"`
	// ClusterOp, in a cluster, names the op; Members are the shares of
	// it that each member carried out on its own actors and recorded. The
	// history shows a cluster op as one record: its Actors, Steps, Started
	// and Ended cover every share, and its Outcome is the worst of theirs.
	ClusterOp string        `json:"cluster_op,omitempty"`
	Members   []MemberShare `json:"members,omitempty"`
	// Member, for the answer of an upgrade or rollback in a cluster, is
	// the member whose share the record is (the others follow it: GET
	// /v1/history shows the whole op once they have).
	Member string `json:"member,omitempty"`
}

// MemberShare is one member's part of a cluster op: the record it wrote.
type MemberShare struct {
	Member  string    `json:"member"`
	ID      uint64    `json:"id"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	Outcome string    `json:"outcome"`
	Error   string    `json:"error,omitempty"`
	Actors  int       `json:"actors"`
}

// UpgradeStep is one timed step of an upgrade: of one actor (a pause), or
// of the whole behaviour (Actor "", e.g. loading the module).
type UpgradeStep struct {
	Actor           string  `json:"actor,omitempty"`
	Step            string  `json:"step"`
	DurationSeconds float64 `json:"duration_seconds"`
	// DrainSeconds is the part of a pause spent waiting for the actor's
	// batch in flight to commit.
	DrainSeconds float64 `json:"drain_seconds,omitempty"`
}

// UpgradeRequest is the body of upgrade; Binary "" means the behaviour's
// configured binary.
type UpgradeRequest struct {
	Binary string `json:"binary,omitempty"`
	// Force upgrades even to a binary whose last dry run failed.
	Force bool `json:"force,omitempty"`
	// Canary, if set, moves this share ("10%") or these actors ("a,b")
	// first. Both versions then serve for BakeSeconds while the canary is
	// compared with the actors still on the old version, and the upgrade
	// then promotes (moves the rest) or rolls the canary back by itself.
	// Unset: the behaviour's configured policy (behaviours.B.upgrade), or
	// every actor, in groups.
	Canary string `json:"canary,omitempty"`
	// BakeSeconds is the canary's bake window; it goes with Canary.
	BakeSeconds float64 `json:"bake_seconds,omitempty"`
	// FailureRateIncrease (a fraction: 0.01 is one percentage point),
	// P99Ratio and MinMessages are the canary's health gates; unset, the
	// behaviour's configured ones, or the defaults (1%, 1.5, 20).
	FailureRateIncrease float64 `json:"failure_rate_increase,omitempty"`
	P99Ratio            float64 `json:"p99_ratio,omitempty"`
	MinMessages         int     `json:"min_messages,omitempty"`
	// Inconclusive is what a bake on too little traffic to judge ends in:
	// "promote" (the default), "rollback", or "hold" (it bakes on until
	// the gates can decide, or an operator promotes or aborts it).
	Inconclusive string `json:"inconclusive,omitempty"`
}

// DecisionResponse is the answer of promote and abort: the decision was
// handed to the baking canary, which acts on it at once (the upgrade's own
// answer, and `graft history`, say how it ended).
type DecisionResponse struct {
	Behaviour string `json:"behaviour"`
	Decision  string `json:"decision"` // promote or abort
}

// UpgradeProgress is an upgrade, rollback or dry run in progress (GET
// /v1/upgrades, and Status.Upgrades).
type UpgradeProgress struct {
	Behaviour string    `json:"behaviour"`
	Kind      string    `json:"kind"` // upgrade, rollback or dry-run
	From      string    `json:"from"`
	To        string    `json:"to"`
	Started   time.Time `json:"started"`
	// Phase is "dry run", "moving" (every actor, in groups) or a canary's
	// phase: "canary" (its group is moving), "baking", "promoting" or
	// "rolling back".
	Phase string `json:"phase"`
	// Canary is the canary's plan ("10%", "2 actors") and Group its
	// actors; BakeUntil is when the bake decides and BakeLeftSeconds the
	// time left; Verdict what decided, once it has, or, while baking, why
	// a bake past its window holds (too little traffic to judge, with
	// inconclusive: hold).
	Canary          string    `json:"canary,omitempty"`
	Group           []string  `json:"group,omitempty"`
	BakeUntil       time.Time `json:"bake_until,omitzero"`
	BakeLeftSeconds float64   `json:"bake_left_seconds,omitempty"`
	Verdict         string    `json:"verdict,omitempty"`
	// Moved of ToMove is how far the move under way has come (the
	// canary's group, the rest after a promote, or a move back).
	Moved  int `json:"moved"`
	ToMove int `json:"to_move"`
	// GroupsMoved of Groups is the same count in groups (upgrade.group_size
	// actors each, paused and committed together).
	GroupsMoved int `json:"groups_moved"`
	Groups      int `json:"groups"`
	// Health, while a canary bakes, is its group against the actors left
	// on the old version, as the gates see them now.
	Health *CanaryHealth `json:"health,omitempty"`
}

// CanaryHealth compares a baking canary with the old version's actors.
type CanaryHealth struct {
	Canary GroupHealth `json:"canary"`
	Old    GroupHealth `json:"old"`
}

// GroupHealth is what one group's actors did since the bake began.
type GroupHealth struct {
	Handled      int64   `json:"handled"`
	Failed       int64   `json:"failed"` // failed attempts
	DeadLettered int64   `json:"dead_lettered"`
	FailureRate  float64 `json:"failure_rate"`
	P99Seconds   float64 `json:"p99_seconds"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// Error codes of ErrorBody.Code, for a client to branch on without
// parsing the message.
const (
	CodeNotFound       = "not_found"
	CodeBadRequest     = "bad_request"
	CodeTooLarge       = "too_large"
	CodeDiskFull       = "disk_full" // HTTP 507: the store's disk is full, nothing was stored
	CodeIDReused       = "id_reused" // HTTP 409: the id was first used for another payload
	CodeTimeout        = "timeout"
	CodeNoReply        = "no_reply"
	CodeConflict       = "conflict"
	CodeUnavailable    = "unavailable"
	CodeNotImplemented = "not_implemented"
	CodeInternal       = "internal"
	// CodeSpawnConflict (HTTP 409): spawn named an actor that exists with
	// another behaviour; the message names both.
	CodeSpawnConflict = "spawn_conflict"
)
