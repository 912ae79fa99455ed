//go:build !linux

package proxy

import (
	"context"
	"errors"
	"net"

	"github.com/podpin/podpin/internal/h2"
)

// Event loops poll with epoll: elsewhere, configuration validation refuses
// listeners[].eventLoop.

type eventLoops struct{}

type loopFront struct{ fast *connQueue }

type loopListener struct{ net.Listener }

func (*Proxy) newLoopFront(net.Addr, *connQueue, *h2.Server, interface{ Inc() }) (*loopFront, error) {
	return nil, errors.New("event loops need Linux")
}

func (*loopFront) serve(net.Listener) error { return errors.New("event loops need Linux") }
func (*loopFront) shutdown()                {}
func (*loopFront) drain(context.Context)    {}
func (*loopFront) close()                   {}
