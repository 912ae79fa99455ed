package k8stest

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"

	pb "sigs.k8s.io/gateway-api-conformance-images/echo-basic/grpcechoserver"
)

// serveGRPC runs echo-basic's gRPC echo service: in cleartext (h2c) on
// HTTP_PORT, and over TLS on HTTPS_PORT when TLS_SERVER_CERT and
// TLS_SERVER_PRIV_KEY are set.
func (ec *echoContainer) serveGRPC(ctx context.Context) error {
	httpPort, err := ec.port("HTTP_PORT", 3000)
	if err != nil {
		return err
	}
	httpsPort, err := ec.port("HTTPS_PORT", 8443)
	if err != nil {
		return err
	}
	pctx := &pb.Context{
		Namespace:   ec.ctx.Namespace,
		Ingress:     ec.ctx.Ingress,
		ServiceName: ec.ctx.Service,
		Pod:         ec.ctx.Pod,
	}
	if err := ec.serveGRPCPort(httpPort, &grpcEcho{ctx: pctx}); err != nil {
		return err
	}
	if ec.env["TLS_SERVER_CERT"] == "" || ec.env["TLS_SERVER_PRIV_KEY"] == "" {
		return nil
	}
	cfg, err := ec.tlsConfig(ctx, "TLS_SERVER_CERT", "TLS_SERVER_PRIV_KEY")
	if err != nil {
		return err
	}
	return ec.serveGRPCPort(httpsPort, &grpcEcho{ctx: pctx, tls: true}, grpc.Creds(credentials.NewTLS(cfg)))
}

func (ec *echoContainer) serveGRPCPort(port int, svc *grpcEcho, opts ...grpc.ServerOption) error {
	l, err := ec.pod.Listen(port)
	if err != nil {
		return err
	}
	srv := grpc.NewServer(opts...)
	pb.RegisterGrpcEchoServer(srv, svc)
	reflection.Register(srv)
	ec.pod.OnStop(srv.Stop)
	go func() { _ = srv.Serve(l) }()
	return nil
}

// grpcEcho answers Echo and EchoTwo with what the call carried: its full
// method name, metadata, authority, the pod's context and, over TLS, the
// connection's parameters. EchoThree stays unimplemented, as in echo-basic.
type grpcEcho struct {
	pb.UnimplementedGrpcEchoServer
	ctx *pb.Context
	tls bool
}

func (s *grpcEcho) Echo(ctx context.Context, _ *pb.EchoRequest) (*pb.EchoResponse, error) {
	return s.answer(ctx)
}

func (s *grpcEcho) EchoTwo(ctx context.Context, _ *pb.EchoRequest) (*pb.EchoResponse, error) {
	return s.answer(ctx)
}

func (s *grpcEcho) answer(ctx context.Context) (*pb.EchoResponse, error) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil, errors.New("no metadata in the request")
	}
	method, _ := grpc.Method(ctx)
	a := &pb.Assertions{FullyQualifiedMethod: method, Context: s.ctx}
	for k, vs := range md {
		for _, v := range vs {
			if k == ":authority" {
				a.Authority = v
			}
			a.Headers = append(a.Headers, &pb.Header{Key: k, Value: v})
		}
	}
	if s.tls {
		p, ok := peer.FromContext(ctx)
		if !ok {
			return nil, errors.New("no peer in the request")
		}
		info, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok {
			return nil, errors.New("no TLS state in the request")
		}
		st := tlsState(&info.State)
		a.TlsAssertions = &pb.TLSAssertions{
			Version:            st.Version,
			NegotiatedProtocol: st.NegotiatedProtocol,
			ServerName:         st.ServerName,
			CipherSuite:        st.CipherSuite,
			PeerCertificates:   st.PeerCertificates,
		}
	}
	return &pb.EchoResponse{Assertions: a}, nil
}
