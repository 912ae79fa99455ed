// Package k8stest runs a real Kubernetes control plane and real pod network
// addresses for the tests of podpin's Kubernetes code. Production code never
// imports it.
//
// # Control plane
//
// [Start] runs etcd and kube-apiserver (v1.37.2, RBAC on) on free loopback
// ports for one test and stops them when the test ends.
// [ControlPlane.StartControllerManager] adds kube-controller-manager with the
// EndpointSlice, ReplicaSet, Deployment, StatefulSet, namespace and garbage
// collector controllers. No real kubelet runs pods: a test plays the kubelet
// by hand with [ControlPlane.RunPod], [ControlPlane.SetPodReady] and
// [ControlPlane.TerminatePod], or starts a [TestKubelet] that does it for
// every pod (see below).
//
// The binaries come from scripts/k8s-binaries, which builds them from the Go
// module proxy into a cache folder (about five minutes the first time):
//
//	export PODPIN_K8S_BIN=$(scripts/k8s-binaries)
//
// Settings, read from the environment:
//
//   - PODPIN_K8S_BIN: folder holding etcd, kube-apiserver and
//     kube-controller-manager (default $HOME/.cache/podpin/k8s-v1.37.2).
//   - CI: when set to anything, a missing prerequisite (binaries, root, the
//     ip and nsenter commands) fails the test instead of skipping it.
//
// The API server knows two bearer tokens: [ControlPlane.AdminToken]
// (group system:masters) and [ControlPlane.PodpinToken], which authenticates
// as podpin's service account [PodpinUser] and is granted nothing until a test
// binds roles to it, so a test can prove which permissions podpin needs.
//
// # Pod network
//
// EndpointSlices reject loopback addresses, so pods need real ones.
// [NewNetNS] creates a network namespace joined to the host by a veth pair:
// 10.244.0.1/24 on the host side, 10.244.0.2/24 (and more with
// [NetNS.AddAddr]) inside. [NetNS.Listen] opens a listener inside it, so a
// test serves "pods" from its own process; [NetNS.Command] runs a program
// inside it. Call [NetNS.CheckRoute] before sending traffic: it proves that
// 10.244.0.0/24 leads into the namespace and nowhere else.
//
// Creating a namespace needs root and the ip (iproute2) and nsenter
// (util-linux) commands. Because the host side always holds 10.244.0.1/24,
// only one [NetNS] exists per host at a time: [NewNetNS] waits for any other,
// in this process or another, to be cleaned up.
//
// # Test kubelet
//
// [ControlPlane.StartTestKubelet] starts a [TestKubelet] in the test
// process: it watches pods (all, or those of [KubeletOptions.Namespaces]),
// and for each new one takes a free address of the [NetNS] (10.244.0.3 to
// 10.244.0.254 less those the test added itself: 10.244.0.2 is the
// namespace's own, so at most 252 pods at a time; the test fails clearly
// when they run out), runs the pod's [PodProgram] on it, binds the pod to
// [DefaultNode] and reports it running and ready through the same code as
// RunPod. The EndpointSlice controller then publishes it. When a pod is
// deleted, its servers close at once and the kubelet removes it with grace
// period 0, so a Deployment's replacement comes up. A program that cannot
// start yet (a Secret it mounts does not exist) is retried with backoff and
// keeps its address meanwhile. The kubelet also serves the API server's
// pods/log calls (its address is in the node's status), with the lines a
// program wrote with [RunningPod.Logf].
//
// The default program, [EchoBasic], serves each container as the Gateway
// API conformance suite's echo-basic image does, chosen by its environment:
// the HTTP echo (JSON naming the path, host, method, proto, headers, pod and
// namespace) over HTTP/1.1 and h2c on 3000, h2c on 3001, HTTPS on 8443 with
// the certificate of the Secret volume TLS_SERVER_CERT names, /ws
// WebSocket echo; the gRPC echo service (GRPC_ECHO_SERVER); the TCP and UDP
// echo servers. A container of any other image gets the HTTP echo on each
// TCP containerPort. The downward API's pod name and namespace fill the
// echo, as the suite's manifests pass them to echo-basic.
//
//	cp := k8stest.Start(t)
//	netns := k8stest.NewNetNS(t)
//	cp.StartControllerManager(t)
//	cp.StartTestKubelet(t, netns, k8stest.KubeletOptions{})
//	// create Deployments and Services; their pods answer at their IPs
//
// # Gateway API
//
// [ControlPlane.InstallGatewayAPICRDs] installs the Gateway API CRDs that
// the Helm chart carries (the experimental channel of the module version
// in go.mod, [GatewayAPIVersion]), and waits until they are Established.
// [GatewayAPICRDDir] says where they are read from. cmd/podpin's
// TestGatewayConformance runs the official conformance suite on these
// parts: see "Gateway API conformance" in docs/kubernetes.md.
//
// # Clean-up
//
// Everything is torn down in t.Cleanup, whether the test passed or failed;
// when it failed, the end of each component's log is written to the test log.
// If the test process itself dies (a -timeout panic, a signal), the kernel
// still cleans up: child processes get SIGKILL through their parent-death
// signal, and the namespace, held only by the test process, vanishes with its
// veth pair and route.
package k8stest
