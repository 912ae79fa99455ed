package main

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podpin/podpin/internal/k8stest"
)

// namedGRPCPod is a gRPC pod that answers every unary and full-duplex call
// with its name.
type namedGRPCPod struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (p namedGRPCPod) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{ServerId: p.name}, nil
}

func (p namedGRPCPod) FullDuplexCall(s grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	for {
		if _, err := s.Recv(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: []byte(p.name)}}); err != nil {
			return err
		}
	}
}

// TestGRPCThroughAKubernetesService runs podpin with --service against a
// real API server, for a Service whose port says appProtocol
// kubernetes.io/h2c and whose pods are grpc-go servers (h2c only) at their
// own addresses. A grpc-go client reaches them through podpin over h2c with
// its key in metadata: each session keeps its pod over unary and
// full-duplex calls; a terminating pod keeps its sessions and takes no new
// ones; when it leaves the EndpointSlice only its sessions move.
func TestGRPCThroughAKubernetesService(t *testing.T) {
	cp := k8stest.Start(t)
	netns := k8stest.NewNetNS(t)
	netns.AddAddr(t, "10.244.0.3")
	ctx := t.Context()
	createNamespace(t, cp.Client, "chat")

	h2c := "kubernetes.io/h2c"
	_, err := cp.Client.CoreV1().Services("chat").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "chat"},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Ports:     []corev1.ServicePort{{Name: "grpc", Port: 50051, TargetPort: intstr.FromInt32(50051), AppProtocol: &h2c}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	endpoint := func(pod, addr string, ready bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{
			Addresses:  []string{addr},
			Conditions: discoveryv1.EndpointConditions{Ready: new(ready), Serving: new(true), Terminating: new(!ready)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "chat", Name: pod},
		}
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:   "chat-pods",
			Labels: map[string]string{discoveryv1.LabelServiceName: "chat", discoveryv1.LabelManagedBy: "podpin-test"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("grpc"), Port: new(int32(50051)), AppProtocol: &h2c}},
	}
	for _, pod := range []struct{ name, addr string }{{"chat-0", "10.244.0.2"}, {"chat-1", "10.244.0.3"}} {
		l, err := netns.Listen("tcp", pod.addr+":50051")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(srv, namedGRPCPod{name: pod.name})
		go srv.Serve(l)
		t.Cleanup(srv.Stop)
		slice.Endpoints = append(slice.Endpoints, endpoint(pod.name, pod.addr, true))
	}
	sliceAPI := cp.Client.DiscoveryV1().EndpointSlices("chat")
	if slice, err = sliceAPI.Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	p := startPodpin(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--service", "chat/chat:grpc", "--kubeconfig", cp.Kubeconfig(t, cp.AdminToken))
	p.waitPods(t, "chat-0 ready", "chat-1 ready")
	if err := netns.CheckRoute(); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("passthrough:///"+p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	// call returns the pod that served key, by a unary call or a
	// full-duplex one.
	call := func(key string, duplex bool) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "x-session", key), 10*time.Second)
		defer cancel()
		if !duplex {
			resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			if err != nil {
				t.Fatalf("key %s, unary call: %v", key, err)
			}
			return resp.GetServerId()
		}
		s, err := client.FullDuplexCall(ctx)
		if err == nil {
			err = s.Send(&testgrpc.StreamingOutputCallRequest{})
		}
		var resp *testgrpc.StreamingOutputCallResponse
		if err == nil {
			resp, err = s.Recv()
		}
		if err != nil {
			t.Fatalf("key %s, full-duplex call: %v", key, err)
		}
		s.CloseSend()
		return string(resp.GetPayload().GetBody())
	}

	pinned := map[string]string{}
	spread := map[string]int{}
	for i := range 40 {
		key := fmt.Sprintf("user-%d", i)
		pinned[key] = call(key, i%2 == 0)
		spread[pinned[key]]++
		if again := call(key, i%2 == 1); again != pinned[key] {
			t.Fatalf("session %s: %s, then %s", key, pinned[key], again)
		}
	}
	if spread["chat-0"] == 0 || spread["chat-1"] == 0 {
		t.Fatalf("40 sessions reached %v, want both pods", spread)
	}

	// chat-1 terminates: still serving, it keeps its sessions.
	slice.Endpoints[1] = endpoint("chat-1", "10.244.0.3", false)
	if slice, err = sliceAPI.Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.waitPods(t, "chat-0 ready", "chat-1 draining")
	for key, pod := range pinned {
		if got := call(key, true); got != pod {
			t.Errorf("session %s moved from %s to %s while chat-1 drains", key, pod, got)
		}
	}
	for i := range 10 {
		if got := call(fmt.Sprintf("new-%d", i), false); got != "chat-0" {
			t.Errorf("a new session went to %s while chat-1 drains, want chat-0", got)
		}
	}

	// chat-1 leaves: only its sessions move.
	slice.Endpoints = slice.Endpoints[:1]
	if _, err = sliceAPI.Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.waitPods(t, "chat-0 ready")
	for key := range pinned {
		if got := call(key, false); got != "chat-0" {
			t.Errorf("session %s on %s after chat-1 left, want chat-0", key, got)
		}
	}
}
