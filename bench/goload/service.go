package main

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The service bench.Echo, described by hand (no generated code): Unary
// answers each call, and Stream answers each message of a bidirectional
// stream, with the pod's name. Messages are protobuf StringValues.
const (
	serviceName  = "bench.Echo"
	unaryMethod  = "/bench.Echo/Unary"
	streamMethod = "/bench.Echo/Stream"
)

// echo is one pod's implementation.
type echo struct{ name string }

var streamDesc = grpc.StreamDesc{StreamName: "Stream", ServerStreams: true, ClientStreams: true}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return wrapperspb.String(srv.(*echo).name), nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			reply := wrapperspb.String(srv.(*echo).name)
			in := new(wrapperspb.StringValue)
			for {
				if err := stream.RecvMsg(in); err != nil {
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
				if err := stream.SendMsg(reply); err != nil {
					return err
				}
			}
		},
	}},
}
