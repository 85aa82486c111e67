// Command wrongcookie is a go-plugin plugin with another project's
// handshake cookie.
package main

import (
	"github.com/hashicorp/go-plugin"

	"github.com/graft-host/graft/dynamic/sdk/wire"
)

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "SOME_OTHER_PLUGIN", MagicCookieValue: "other"},
		VersionedPlugins: map[int]plugin.PluginSet{1: {wire.PluginName: &wire.BehaviourPlugin{}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
