// Command rawstream is the baseline for benchmarks: a go-plugin plugin with
// no graft code, serving grpc's own interop TestService (a bidi echo stream
// and a unary echo). It measures what go-plugin and gRPC cost by themselves.
package main

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

type server struct {
	testpb.UnimplementedTestServiceServer
}

func (server) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: req.Payload}, nil
}

func (server) FullDuplexCall(s testpb.TestService_FullDuplexCallServer) error {
	for {
		req, err := s.Recv()
		if err != nil {
			return nil
		}
		if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: req.Payload}); err != nil {
			return err
		}
	}
}

type raw struct{ plugin.NetRPCUnsupportedPlugin }

func (raw) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	testpb.RegisterTestServiceServer(s, server{})
	return nil
}

func (raw) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "RAWSTREAM_BENCH", MagicCookieValue: "raw"},
		Plugins:         plugin.PluginSet{"raw": raw{}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
