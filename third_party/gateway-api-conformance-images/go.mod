module sigs.k8s.io/gateway-api-conformance-images

go 1.26.4

require (
	google.golang.org/grpc v1.82.1
	google.golang.org/protobuf v1.36.12-0.20260120151049-f2248ac996af
)
