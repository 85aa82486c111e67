// Package wire holds what both ends of graft's behaviour protocol must agree
// on: the go-plugin handshake (magic cookie, protocol version, plugin name),
// the environment variable naming the liveness pipe, and the go-plugin
// GRPCPlugin that binds the generated gRPC code to go-plugin.
//
// It is part of the SDK module so that the SDK (plugin side) and the host
// share one definition without either importing the other. Behaviour authors
// never need it; it is not internal only because the host lives in another
// module.
package wire

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
)

const (
	// MagicCookieKey and MagicCookieValue are graft's own go-plugin handshake
	// cookie. They are not a security feature: they make a behaviour plugin
	// refuse to run when executed by hand or by another go-plugin host, and
	// make graft refuse another project's plugins.
	MagicCookieKey   = "GRAFT_BEHAVIOUR_PLUGIN"
	MagicCookieValue = "7f3c0e9a5d2b41c8-graft-behaviour"

	// ProtocolVersion is the version of graftv1's service definitions,
	// negotiated with go-plugin's VersionedPlugins. It changes only when the
	// protocol does, never with a behaviour's code or schema version.
	ProtocolVersion = 1

	// PluginName is the key of the behaviour in go-plugin's plugin set.
	PluginName = "behaviour"

	// EnvLivenessFD names the environment variable holding the number of the
	// inherited file descriptor (the read end of a pipe whose write end only
	// the host holds). EOF on it means the host is gone.
	EnvLivenessFD = "GRAFT_LIVENESS_FD"

	// EnvCgroup names the environment variable holding the folder of the
	// plugin's own cgroup, when the host put it in one. The plugin kills
	// that cgroup (cgroup.kill, or every process in cgroup.procs) when the
	// host dies, so nothing of its tree outlives the host.
	EnvCgroup = "GRAFT_CGROUP"

	// EnvModuleID names the environment variable marking the processes
	// of one module, for a host without cgroups: it is a child subreaper,
	// and recognises the module's orphans re-parented to it by this id.
	EnvModuleID = "GRAFT_MODULE_ID"
)

// Bounds of one message's effects (graftv1.MessageResult), which both ends
// enforce: the SDK fails a handler that goes over one with an error naming
// it, and the host refuses a result over one as a bad response. They keep a
// single message from flooding the store with timers or actors.
const (
	// MaxTimersPerMessage bounds the timers one message sets.
	MaxTimersPerMessage = 1000
	// MaxCancelsPerMessage bounds the timers one message cancels.
	MaxCancelsPerMessage = 1000
	// MaxSpawnsPerMessage bounds the actors one message spawns.
	MaxSpawnsPerMessage = 1000
	// MaxTimerID bounds a timer id in bytes (the SDK's ids are at most
	// about 160; the host refuses a longer one, and the SDK ignores the
	// cancel of one, which can name no timer).
	MaxTimerID = 256
)

// Reserved says whether key is an environment variable graft or go-plugin
// sets for a plugin, which a behaviour's configured environment must not
// override.
func Reserved(key string) bool {
	switch key {
	case MagicCookieKey, EnvLivenessFD, EnvCgroup, EnvModuleID:
		return true
	}
	return len(key) >= 7 && key[:7] == "PLUGIN_"
}

// Handshake returns the go-plugin handshake for protocol version v.
func Handshake(v uint) plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  v,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// Conn is what the host gets from dispensing the behaviour plugin: the
// generated client and the broker used to offer the Host service back.
type Conn struct {
	Behaviour graftv1.BehaviourClient
	Broker    *plugin.GRPCBroker
}

// BehaviourPlugin implements go-plugin's GRPCPlugin for graftv1.Behaviour.
// The plugin side sets NewServer; the host side leaves it nil.
type BehaviourPlugin struct {
	plugin.NetRPCUnsupportedPlugin

	// NewServer builds the Behaviour server once the broker is known (the
	// server dials the host's callback service through the broker).
	NewServer func(broker *plugin.GRPCBroker) graftv1.BehaviourServer
}

// GRPCServer registers the behaviour service (plugin side).
func (p *BehaviourPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	if p.NewServer == nil {
		return errors.New("graft: BehaviourPlugin has no server")
	}
	graftv1.RegisterBehaviourServer(s, p.NewServer(broker))
	return nil
}

// GRPCClient returns a *Conn (host side).
func (p *BehaviourPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &Conn{Behaviour: graftv1.NewBehaviourClient(cc), Broker: broker}, nil
}
