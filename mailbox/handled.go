package mailbox

// Handled is one batch an actor handled and committed, kept for a later
// dry run (verify_window): the state the batch started from, its messages,
// and what the version that handled them produced, message by message
// and in its final state. A dry run hands the same messages to a new
// version, starting from Before migrated up, and compares.
type Handled struct {
	// Before is the committed state the batch started from; After the one
	// it committed.
	Before State `json:"before"`
	After  State `json:"after"`
	// Messages are the batch, in order.
	Messages []Message `json:"messages"`
	// Results are, for each message, what the handler answered and sent.
	Results []HandledResult `json:"results"`
}

// HandledResult is what a handler produced for one message of a Handled
// batch.
type HandledResult struct {
	Reply    []byte `json:"reply,omitempty"`
	HasReply bool   `json:"has_reply,omitempty"`
	// Refusal is the handler's terminal error, if it refused the message.
	Refusal string `json:"refusal,omitempty"`
	// Sends are the messages it sent, in order (To and payload).
	Sends []Outgoing `json:"sends,omitempty"`
}
