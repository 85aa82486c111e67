// Command badresults speaks the protocol but answers every batch with one
// result too few.
package main

import (
	"context"

	"github.com/hashicorp/go-plugin"

	graftv1 "github.com/graft-host/graft/dynamic/sdk/proto/graftv1"
	"github.com/graft-host/graft/dynamic/sdk/wire"
)

type server struct {
	graftv1.UnimplementedBehaviourServer
}

func (server) Info(context.Context, *graftv1.InfoRequest) (*graftv1.InfoResponse, error) {
	return &graftv1.InfoResponse{Behaviour: "echo", CodeVersion: "bad", SchemaVersion: 1}, nil
}

func (server) Handle(s graftv1.Behaviour_HandleServer) error {
	for {
		req, err := s.Recv()
		if err != nil {
			return nil
		}
		resp := &graftv1.HandleResponse{BatchId: req.BatchId, State: req.State}
		for range len(req.Messages) - 1 {
			resp.Results = append(resp.Results, &graftv1.MessageResult{})
		}
		if err := s.Send(resp); err != nil {
			return err
		}
	}
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: wire.Handshake(wire.ProtocolVersion),
		VersionedPlugins: map[int]plugin.PluginSet{wire.ProtocolVersion: {wire.PluginName: &wire.BehaviourPlugin{
			NewServer: func(*plugin.GRPCBroker) graftv1.BehaviourServer { return server{} },
		}}},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}
