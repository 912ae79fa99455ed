// Package discovery finds the pods behind a route. A Source reports the
// complete current set of endpoints whenever it changes; the proxy turns each
// set into an immutable snapshot that the request path reads.
//
// [Static] reports the pods listed in the configuration, at once; a reload
// makes a new one. [Kubernetes] finds the pods of a Service from its
// EndpointSlices through label-filtered informers, named by their pod
// names; [NewDNS] resolves a name's A/AAAA or SRV records again and again.
// [Factory] makes the source a route's [Spec] asks for. See README.md for
// settings, identity and state rules, and the RBAC the Kubernetes source
// needs.
package discovery

import (
	"context"
	"fmt"
)

// State is what a pod may do with sessions.
type State uint8

const (
	// Ready pods take new sessions and keep their pinned ones.
	Ready State = iota
	// Draining pods are terminating but still serving: they keep their pinned
	// sessions and take no new ones (EndpointSlice serving=true,
	// terminating=true).
	Draining
	// NotReady pods serve nothing; their sessions rebind.
	NotReady
)

func (s State) String() string {
	switch s {
	case Ready:
		return "ready"
	case Draining:
		return "draining"
	case NotReady:
		return "not-ready"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Endpoint is one pod as a source sees it.
type Endpoint struct {
	// Name is the pod's stable identity; table entries refer to it.
	Name string
	// Address is host:port.
	Address string
	// Weight scales its share of new sessions; at least 1.
	Weight int
	// State says whether it takes new sessions, keeps old ones, or neither.
	State State
	// Protocol is what the pod speaks: "" or "http" for HTTP/1.1, "h2c"
	// for HTTP/2 in cleartext, "https" for TLS (the config.Pod*
	// constants). Static backends take it from their URL's scheme, a
	// Service's pods from the appProtocol of its port (see AppProtocol).
	Protocol string
}

// Source reports the endpoints of one route.
type Source interface {
	// Start calls update with the complete endpoint set whenever it
	// changes, until stop is called. The first call comes as soon as the set
	// is known: before Start returns when the source knows it without
	// waiting (Static), else from a goroutine of the source's (once the
	// Kubernetes caches synced, at the first DNS answer). update is never
	// called concurrently, nor after stop has returned; stop returns once
	// the source's goroutines have ended.
	Start(update func([]Endpoint)) (stop func())
}

// startLoop runs loop in a goroutine of its own until the returned stop is
// called: stop ends loop's context and waits for loop to return. Sources
// that wait for their endpoints start this way.
func startLoop(loop func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		loop(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}
