package place

import "errors"

// Refusals of placement; Class says how each is answered.
var (
	ErrNoRoute     = errors.New("no route matches this request")                            // ClassNotFound
	ErrDupKey      = errors.New("session key header sent more than once")                   // ClassBadRequest
	ErrKeyTooLong  = errors.New("session key is too long")                                  // ClassBadRequest
	ErrKeyBytes    = errors.New("session key has bytes outside visible ASCII")              // ClassBadRequest
	ErrMissingKey  = errors.New("request carries no session key")                           // ClassBadRequest
	ErrNoPod       = errors.New("no pod can take this request")                             // ClassUnavailable
	ErrStrict      = errors.New("the pinned pod cannot serve and this route never rebinds") // ClassUnavailable
	ErrNewSessions = errors.New("too many new sessions from this address")                  // ClassTooMany
)

// RefusalClass is the kind of a refusal, which each front end renders in
// its protocol: an HTTP status, a gRPC status.
type RefusalClass int

// Refusal classes.
const (
	ClassNotFound    RefusalClass = iota + 1 // no route: HTTP 404
	ClassBadRequest                          // the client's key is bad or missing: HTTP 400
	ClassUnavailable                         // no pod can serve: HTTP 503
	ClassTooMany                             // over a limit; retry later: HTTP 429
)

// Class returns the class of a refusal err, one of the errors above;
// ClassUnavailable for any other.
func Class(err error) RefusalClass {
	switch err {
	case ErrNoRoute:
		return ClassNotFound
	case ErrDupKey, ErrKeyTooLong, ErrKeyBytes, ErrMissingKey:
		return ClassBadRequest
	case ErrNewSessions:
		return ClassTooMany
	}
	return ClassUnavailable
}

// Rebind reasons, as counted in podpin_table_rebinds_total.
const (
	ReasonGone          = "gone"           // pod left the endpoint set
	ReasonUnready       = "unready"        // pod stopped serving
	ReasonDraining      = "draining"       // pod is terminating and the route does not drain
	ReasonConnectFailed = "connect-failed" // connecting to the pod failed
	ReasonEjected       = "ejected"        // pod ejected by passive health checks
	ReasonUnhealthy     = "unhealthy"      // pod failing active health checks
	ReasonAdmin         = "admin"          // an operator pinned the key elsewhere
)
