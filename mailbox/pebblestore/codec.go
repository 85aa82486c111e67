package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/graft-host/graft/mailbox"
)

// Records on the hot path (messages, states, failures, outcomes) use a small
// length-prefixed binary form: a format byte, then uvarints and
// uvarint-prefixed byte strings. Rarely written records (actors, dead
// letters, history) are JSON. Decoding never panics: a short or malformed
// record is an error that Open and the readers report as corruption.

const recordV1 = 1

var errShortRecord = errors.New("record is truncated")

type encoder struct{ b []byte }

func newEncoder(size int) *encoder {
	e := &encoder{b: make([]byte, 0, size+16)}
	e.b = append(e.b, recordV1)
	return e
}

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) strs(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

type decoder struct {
	b   []byte
	err error
}

func newDecoder(b []byte) *decoder {
	d := &decoder{b: b}
	if len(b) == 0 {
		d.err = errShortRecord
	} else if b[0] != recordV1 {
		d.err = fmt.Errorf("record format %d is not one this graft reads", b[0])
	} else {
		d.b = b[1:]
	}
	return d
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShortRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

// u32 reads a uvarint that must fit 32 bits.
func (d *decoder) u32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 && d.err == nil {
		d.err = fmt.Errorf("field value %d does not fit 32 bits", v)
	}
	return uint32(v)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.err = errShortRecord
		return nil
	}
	p := make([]byte, n)
	copy(p, d.b[:n])
	d.b = d.b[n:]
	return p
}

func (d *decoder) str() string { return string(d.bytes()) }

// done returns the decoding error, or an error if bytes are left over: a
// record longer than its fields is damaged, not a record to trust.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("record has %d bytes after its last field", len(d.b))
	}
	return d.err
}

func (d *decoder) strs() []string {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) { // each string takes at least one byte
		d.err = errShortRecord
		return nil
	}
	var ss []string
	for i := uint64(0); i < n && d.err == nil; i++ {
		ss = append(ss, d.str())
	}
	return ss
}

// Optional trailing fields of a message record: a tag byte, then the
// field. A record without them is the original form, which every graft
// wrote before timers and which still decodes. An optional field is written
// only when it is not empty, so each message has one encoding.
const (
	tagTimerID     = 1 // then str: Message.TimerID
	tagTraceParent = 2 // then str: Message.TraceParent
)

// A message record's optional trailing fields, each written as its tag
// then its value when not empty, in tag order: a record without them
// (older, or with nothing to say) decodes as before. They are written and
// read field by field, not through a table of pointers into the message,
// which would move every decoded message to the heap.

func encodeMessage(m *mailbox.Message) []byte {
	e := newEncoder(len(m.Payload) + len(m.ID) + len(m.Sender) + len(m.TimerID) + len(m.TraceParent) + 16)
	e.uvarint(uint64(m.EnqueuedAt.UnixNano()))
	e.str(m.ID)
	e.str(m.Sender)
	e.strs(m.CallChain)
	e.bytes(m.Payload)
	e.optional(tagTimerID, m.TimerID)
	e.optional(tagTraceParent, m.TraceParent)
	return e.b
}

// optional writes an optional trailing field: its tag and v, if v is set.
func (e *encoder) optional(tag byte, v string) {
	if v != "" {
		e.b = append(e.b, tag)
		e.str(v)
	}
}

// optional reads the optional trailing field tag if it is next ("" if
// not); an empty value is corruption, since none is ever written.
func (d *decoder) optional(tag byte, name string) string {
	if d.err != nil || len(d.b) == 0 || d.b[0] != tag {
		return ""
	}
	d.b = d.b[1:]
	v := d.str()
	if d.err == nil && v == "" {
		d.err = fmt.Errorf("message record has an empty %s field", name)
	}
	return v
}

func decodeMessage(seq uint64, b []byte) (mailbox.Message, error) {
	d := newDecoder(b)
	m := mailbox.Message{Seq: seq}
	m.EnqueuedAt = time.Unix(0, int64(d.uvarint()))
	m.ID = d.str()
	m.Sender = d.str()
	m.CallChain = d.strs()
	m.Payload = d.bytes()
	m.TimerID = d.optional(tagTimerID, "timer id")
	m.TraceParent = d.optional(tagTraceParent, "trace parent")
	if err := d.done(); err != nil {
		return mailbox.Message{}, fmt.Errorf("message %d: %w", seq, err)
	}
	return m, nil
}

// encodeTimer is the record under a timer's 'T' key. Its due time and
// owner id are in the key too; the record repeats the due time and carries
// the owner's name so that firing needs no other lookup.
func encodeTimer(t *mailbox.Timer) []byte {
	e := newEncoder(len(t.ID) + len(t.Owner) + len(t.To) + len(t.Payload) + 16)
	e.str(t.ID)
	e.str(t.Owner)
	e.str(t.To)
	e.uvarint(uint64(dueNanos(t.Due)))
	e.bytes(t.Payload)
	return e.b
}

func decodeTimer(b []byte) (mailbox.Timer, error) {
	d := newDecoder(b)
	var t mailbox.Timer
	t.ID = d.str()
	t.Owner = d.str()
	t.To = d.str()
	due := d.uvarint()
	t.Payload = d.bytes()
	if d.err == nil && due > math.MaxInt64 {
		d.err = fmt.Errorf("timer due time %d is out of range", due)
	}
	if err := d.done(); err != nil {
		return mailbox.Timer{}, err
	}
	t.Due = time.Unix(0, int64(due))
	return t, nil
}

func encodeState(s *mailbox.State) []byte {
	e := newEncoder(len(s.Data) + len(s.Module) + 8)
	e.uvarint(uint64(s.Schema))
	e.str(s.Module)
	e.bytes(s.Data)
	return e.b
}

func decodeState(b []byte) (mailbox.State, error) {
	d := newDecoder(b)
	var s mailbox.State
	s.Schema = d.u32()
	s.Module = d.str()
	s.Data = d.bytes()
	if err := d.done(); err != nil {
		return mailbox.State{}, err
	}
	return s, nil
}

// failure is the attempts counter of one pending message.
type failure struct {
	attempts uint32
	reason   string
}

func encodeFailure(f failure) []byte {
	e := newEncoder(len(f.reason) + 8)
	e.uvarint(uint64(f.attempts))
	e.str(f.reason)
	return e.b
}

func decodeFailure(b []byte) (failure, error) {
	d := newDecoder(b)
	f := failure{attempts: d.u32(), reason: d.str()}
	if err := d.done(); err != nil {
		return failure{}, err
	}
	return f, nil
}

// outcome is what is kept under a message id once it is committed with a
// reply or dead-lettered (a plain ack needs no record: seq <= ack says it).
type outcome struct {
	kind    mailbox.Outcome
	payload []byte // the reply, or the dead-letter error
}

func encodeOutcome(o outcome) []byte {
	e := newEncoder(len(o.payload) + 4)
	e.uvarint(uint64(o.kind))
	e.bytes(o.payload)
	return e.b
}

func decodeOutcome(b []byte) (outcome, error) {
	d := newDecoder(b)
	kind := d.uvarint()
	o := outcome{kind: mailbox.Outcome(kind), payload: d.bytes()}
	if d.err == nil && (kind < uint64(mailbox.OutcomeApplied) || kind > uint64(mailbox.OutcomeRefused)) {
		d.err = fmt.Errorf("outcome kind %d is not one this graft knows", kind)
	}
	if err := d.done(); err != nil {
		return outcome{}, err
	}
	return o, nil
}
