//go:build !linux

package proxy

import (
	"context"
	"errors"
	"net"
)

// Event loops poll with epoll: elsewhere, configuration validation refuses
// listeners[].eventLoop.

type eventLoops struct{ fast *connQueue }

type loopListener struct{ net.Listener }

func newEventLoops(*Proxy, net.Addr, *connQueue, interface{ Inc() }) (*eventLoops, error) {
	return nil, errors.New("event loops need Linux")
}

func (*eventLoops) serve(net.Listener) error { return errors.New("event loops need Linux") }
func (*eventLoops) shutdown()                {}
func (*eventLoops) drain(context.Context)    {}
func (*eventLoops) close()                   {}
