package balance

import "sync/atomic"

// leastLoaded picks the pod with the lowest load/weight, where load is
// InFlight (least-conn) or Sessions (least-sessions). It is safe for
// concurrent use.
//
// Ties go to the tied pods in turn: a counter, advanced only when there is a
// tie, selects which of the tied pods wins, so two idle pods alternate rather
// than the first one taking every new session while the counts lag. Loads
// are compared exactly by cross-multiplication, never by float division.
//
// Cost: one pass over pods reading load and weight, a second pass only on a
// tie; no allocation, no lock. Loads read in the two passes may differ when
// other goroutines change them; the pick is then the first pod found at the
// minimum, which is as good as the snapshot it came from.
type leastLoaded struct {
	// load returns the pod's current load; it is Pod.InFlight or Pod.Sessions.
	load func(Pod) int64
	// ties counts picks that had a tie, to rotate among the tied pods.
	ties atomic.Uint64
}

// Pick implements Balancer. It ignores key.
func (l *leastLoaded) Pick(_ uint64, pods []Pod) int {
	switch len(pods) {
	case 0:
		return -1
	case 1:
		return 0
	}

	best, minLoad, minWeight := 0, l.load(pods[0]), weight(pods[0])
	tied := uint64(1)
	for i := 1; i < len(pods); i++ {
		load, w := l.load(pods[i]), weight(pods[i])
		switch compareLoad(load, w, minLoad, minWeight) {
		case -1:
			best, minLoad, minWeight, tied = i, load, w, 1
		case 0:
			tied++
		}
	}
	if tied == 1 {
		return best
	}

	k := (l.ties.Add(1) - 1) % tied
	for i := best; i < len(pods); i++ {
		if compareLoad(l.load(pods[i]), weight(pods[i]), minLoad, minWeight) == 0 {
			if k == 0 {
				return i
			}
			k--
		}
	}
	return best
}
