package dynamic

import (
	"errors"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
)

// Kinds of failed calls a Caller reports. The host tells the plugin which
// one it was, so a handler can match the error with errors.Is instead of
// parsing text. A Caller marks its error with one of them by wrapping it
// (fmt.Errorf("...: %w", ErrCallCycle)) or with a *RefusedError.
var (
	ErrCallCycle       = errors.New("the call would close a cycle of calls")
	ErrCallUnknown     = errors.New("unknown actor")
	ErrCallTimeout     = errors.New("no reply within the call timeout")
	ErrCallTooLarge    = errors.New("over the message size limit")
	ErrCallDeadLetter  = errors.New("the request was dead-lettered")
	ErrCallNoReply     = errors.New("the handler did not reply")
	errCallUnspecified = errors.New("call failed")
)

// RefusedError is a call the called actor's handler refused with a terminal
// error; Reason is its text.
type RefusedError struct {
	Reason string
}

// Error returns the reason.
func (e *RefusedError) Error() string { return e.Reason }

// callErrorKind classifies a Caller's error for the plugin. For a refusal
// the text is the reason alone, for anything else the Caller's whole text.
func callErrorKind(err error) (graftv1.CallErrorKind, string) {
	var re *RefusedError
	if errors.As(err, &re) {
		return graftv1.CallErrorKind_CALL_ERROR_KIND_REFUSED, re.Reason
	}
	kinds := []struct {
		err  error
		kind graftv1.CallErrorKind
	}{
		{ErrCallCycle, graftv1.CallErrorKind_CALL_ERROR_KIND_CYCLE},
		{ErrCallUnknown, graftv1.CallErrorKind_CALL_ERROR_KIND_UNKNOWN_ACTOR},
		{ErrCallTimeout, graftv1.CallErrorKind_CALL_ERROR_KIND_TIMEOUT},
		{ErrCallTooLarge, graftv1.CallErrorKind_CALL_ERROR_KIND_TOO_LARGE},
		{ErrCallDeadLetter, graftv1.CallErrorKind_CALL_ERROR_KIND_DEAD_LETTERED},
		{ErrCallNoReply, graftv1.CallErrorKind_CALL_ERROR_KIND_NO_REPLY},
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.kind, err.Error()
		}
	}
	return graftv1.CallErrorKind_CALL_ERROR_KIND_UNSPECIFIED, err.Error()
}
