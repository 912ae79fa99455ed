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
// collector controllers. Nothing runs pods, so a test plays the kubelet with
// [ControlPlane.RunPod], [ControlPlane.SetPodReady] and
// [ControlPlane.TerminatePod].
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
// # Clean-up
//
// Everything is torn down in t.Cleanup, whether the test passed or failed;
// when it failed, the end of each component's log is written to the test log.
// If the test process itself dies (a -timeout panic, a signal), the kernel
// still cleans up: child processes get SIGKILL through their parent-death
// signal, and the namespace, held only by the test process, vanishes with its
// veth pair and route.
package k8stest
