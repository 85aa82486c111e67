package control

import "github.com/graft-host/graft/core/control/api"

// The wire types, errors and client of the control API live in package
// api, which links nothing of the core (no go-plugin, no gRPC, no store),
// so that a program that only talks to a core stays small. The names below
// are the same types under their old names, for the server in this
// package and for code that already imports control (which links the whole
// core). A client should import core/control/api directly.
type (
	// Client is api.Client.
	Client = api.Client
	// CoreInfo is api.CoreInfo.
	CoreInfo = api.CoreInfo
	// Status is api.Status.
	Status = api.Status
	// ActorStatus is api.ActorStatus.
	ActorStatus = api.ActorStatus
	// MemberStatus is api.MemberStatus.
	MemberStatus = api.MemberStatus
	// SendRequest is api.SendRequest.
	SendRequest = api.SendRequest
	// SendResponse is api.SendResponse.
	SendResponse = api.SendResponse
	// CallRequest is api.CallRequest.
	CallRequest = api.CallRequest
	// CallResponse is api.CallResponse.
	CallResponse = api.CallResponse
	// ActorResponse is api.ActorResponse.
	ActorResponse = api.ActorResponse
	// DeadLetter is api.DeadLetter.
	DeadLetter = api.DeadLetter
	// Messages is api.Messages.
	Messages = api.Messages
	// QueuedMessage is api.QueuedMessage.
	QueuedMessage = api.QueuedMessage
	// HandledMessage is api.HandledMessage.
	HandledMessage = api.HandledMessage
	// RetryRequest is api.RetryRequest.
	RetryRequest = api.RetryRequest
	// Requeued is api.Requeued.
	Requeued = api.Requeued
	// RetryResponse is api.RetryResponse.
	RetryResponse = api.RetryResponse
	// StateResponse is api.StateResponse.
	StateResponse = api.StateResponse
	// StateRequest is api.StateRequest.
	StateRequest = api.StateRequest
	// StateSummary is api.StateSummary.
	StateSummary = api.StateSummary
	// RepairResponse is api.RepairResponse.
	RepairResponse = api.RepairResponse
	// UpgradeRecord is api.UpgradeRecord.
	UpgradeRecord = api.UpgradeRecord
	MemberShare   = api.MemberShare
	// UpgradeStep is api.UpgradeStep.
	UpgradeStep = api.UpgradeStep
	// UpgradeRequest is api.UpgradeRequest.
	UpgradeRequest = api.UpgradeRequest
	// UpgradeProgress is api.UpgradeProgress.
	UpgradeProgress = api.UpgradeProgress
	// CanaryHealth is api.CanaryHealth.
	CanaryHealth = api.CanaryHealth
	// GroupHealth is api.GroupHealth.
	GroupHealth = api.GroupHealth
	// DecisionResponse is api.DecisionResponse.
	DecisionResponse = api.DecisionResponse
	// DryRunRequest is api.DryRunRequest.
	DryRunRequest = api.DryRunRequest
	// DryRunReport is api.DryRunReport.
	DryRunReport = api.DryRunReport
	// DryRunReplay is api.DryRunReplay.
	DryRunReplay = api.DryRunReplay
	// DryRunFailure is api.DryRunFailure.
	DryRunFailure = api.DryRunFailure
	// SpawnRequest is api.SpawnRequest.
	SpawnRequest = api.SpawnRequest
	// SpawnResponse is api.SpawnResponse.
	SpawnResponse = api.SpawnResponse
	// Timer is api.Timer.
	Timer = api.Timer
	// ErrorBody is api.ErrorBody.
	ErrorBody = api.ErrorBody
	// APIError is api.APIError.
	APIError = api.APIError
	// NoCoreError is api.NoCoreError.
	NoCoreError = api.NoCoreError
	// UncertainError is api.UncertainError.
	UncertainError = api.UncertainError
	// RefusedError is api.RefusedError, the refusal a Client's Call
	// returns (the core's own is core.RefusedError).
	RefusedError = api.RefusedError
)

// NewClient is api.NewClient.
func NewClient(socket string) *Client { return api.NewClient(socket) }

// Sentinel errors of the client, as in package api (the same values).
var (
	// ErrNoCore is api.ErrNoCore.
	ErrNoCore = api.ErrNoCore
	// ErrUncertain is api.ErrUncertain.
	ErrUncertain = api.ErrUncertain
)

// DefaultCallTimeout is api.DefaultCallTimeout.
const DefaultCallTimeout = api.DefaultCallTimeout

// OutcomeScheduled is api.OutcomeScheduled.
const OutcomeScheduled = api.OutcomeScheduled

// Error codes of ErrorBody.Code, as in package api.
const (
	CodeNotFound       = api.CodeNotFound
	CodeBadRequest     = api.CodeBadRequest
	CodeTooLarge       = api.CodeTooLarge
	CodeDiskFull       = api.CodeDiskFull
	CodeIDReused       = api.CodeIDReused
	CodeTimeout        = api.CodeTimeout
	CodeNoReply        = api.CodeNoReply
	CodeConflict       = api.CodeConflict
	CodeUnavailable    = api.CodeUnavailable
	CodeNotImplemented = api.CodeNotImplemented
	CodeInternal       = api.CodeInternal
	CodeSpawnConflict  = api.CodeSpawnConflict
)
