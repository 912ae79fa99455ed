package table

import (
	"sync"
	"sync/atomic"
	"time"
)

// coarseTick is how often a Clock reads the wall clock. Tables count whole
// seconds, so a reading up to coarseTick old only moves the start of each
// second by that much.
const coarseTick = 100 * time.Millisecond

// Clock is a coarse clock for tables: a goroutine of its own reads the wall
// clock every 100ms and keeps it in table seconds, which a table given the
// Clock (Config.Clock) reads with one atomic load per operation. Reading
// the wall clock on every operation instead costs as much as the rest of a
// hit at a million entries: the read orders the loads around it, so one
// lookup's memory miss cannot overlap another's.
//
// Whoever makes a Clock owns its goroutine and ends it with Stop, after the
// last operation on the tables that read it. One Clock may serve any number
// of tables. Clock is safe for concurrent use.
type Clock struct {
	now  atomic.Uint32 // table seconds, as last read
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewClock returns a Clock that reads the wall clock now and every 100ms
// until Stop.
func NewClock() *Clock {
	c := &Clock{stop: make(chan struct{}), done: make(chan struct{})}
	c.now.Store(stamp(time.Now()))
	go c.run()
	return c
}

func (c *Clock) run() {
	defer close(c.done)
	t := time.NewTicker(coarseTick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.now.Store(stamp(time.Now()))
		}
	}
}

// Stop ends the clock's goroutine and returns once it has ended. The clock
// then keeps its last reading. Stop may be called more than once.
func (c *Clock) Stop() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}
