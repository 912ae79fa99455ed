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

	// Refusals of the request's framing, size or pace.
	errBodyTooLarge = errors.New("request body is too large")               // 413
	errBodyTimeout  = errors.New("request body stalled")                    // 408
	errBodyFraming  = errors.New("request body framing is invalid")         // 400
	errHeaderTime   = errors.New("request headers not received in time")    // 408
	errHeaderSize   = errors.New("request line and headers are too large")  // 431
	errTooMany      = errors.New("too many header fields")                  // 431
	errExpect       = errors.New("only Expect: 100-continue is supported")  // 417
	errMalformed    = errors.New("malformed request")                       // 400
	errNewSessions  = errors.New("too many new sessions from this address") // 429
	errTooManyConns = errors.New("too many connections from this address")  // 429
)

// Edge errors: each is a 400 unless noted, and closes the connection.
var (
	errBothFraming  = errors.New("both Content-Length and Transfer-Encoding")
	errFolded       = errors.New("header line folding (obs-fold)")
	errLineEnd      = errors.New("header line not ended by CRLF")
	errFieldName    = errors.New("invalid header field name")
	errFieldValue   = errors.New("invalid byte in a header field value")
	errNoHost       = errors.New("HTTP/1.1 request without Host")
	errBadHost      = errors.New("invalid Host")
	errBadTarget    = errors.New("invalid request target")
	errBadMethod    = errors.New("invalid method")
	errAbsoluteHost = errors.New("absolute-form target disagrees with Host")
	errTE           = errors.New("Transfer-Encoding other than chunked")
	errVersion      = errors.New("HTTP version other than 1.0 and 1.1")
)

// errForeignDigest means a snapshot was written under another key secret.
var errForeignDigest = errors.New("state was saved under another key secret; its digests cannot match")

// Errors of the inspection and editing API (inspect.go); the admin API
// answers 404 for a route or a key it does not find, 400 for a pod.
var (
	ErrNoSuchRoute   = errors.New("no such route")
	ErrNoSuchPod     = errors.New("no such pod in the route")
	ErrNoSuchSession = errors.New("key is not pinned")
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
