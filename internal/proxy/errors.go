package proxy

import "errors"

// Errors a request can meet, each answered with its status at the edge.
var (
	errNoRoute     = errors.New("no route matches this request")                            // 404
	errDupKey      = errors.New("session key header sent more than once")                   // 400
	errKeyTooLong  = errors.New("session key is too long")                                  // 400
	errKeyBytes    = errors.New("session key has bytes outside visible ASCII")              // 400
	errMissingKey  = errors.New("request carries no session key")                           // 400
	errNoPod       = errors.New("no pod can take this request")                             // 503
	errStrict      = errors.New("the pinned pod cannot serve and this route never rebinds") // 503
	errUpgradeBody = errors.New("upgrade request with a body")                              // 400
)

// Rebind reasons, as counted in podpin_table_rebinds_total.
const (
	reasonGone          = "gone"           // pod left the endpoint set
	reasonUnready       = "unready"        // pod stopped serving
	reasonDraining      = "draining"       // pod is terminating and the route does not drain
	reasonConnectFailed = "connect-failed" // connecting to the pod failed
	reasonEjected       = "ejected"        // pod ejected by passive health checks
	reasonUnhealthy     = "unhealthy"      // pod failing active health checks
	reasonAdmin         = "admin"          // an operator pinned the key elsewhere
)
