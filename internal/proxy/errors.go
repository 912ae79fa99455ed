package proxy

import "errors"

// Errors a request can meet at the edge, each answered with its status
// (placement's refusals are place's errors, answered by placeStatus).
var (
	errUpgradeBody = errors.New("upgrade request with a body") // 400

	// Refusals of the request's framing, size or pace.
	errBodyTooLarge = errors.New("request body is too large")              // 413
	errBodyTimeout  = errors.New("request body stalled")                   // 408
	errBodyFraming  = errors.New("request body framing is invalid")        // 400
	errHeaderTime   = errors.New("request headers not received in time")   // 408
	errHeaderSize   = errors.New("request line and headers are too large") // 431
	errTooMany      = errors.New("too many header fields")                 // 431
	errExpect       = errors.New("only Expect: 100-continue is supported") // 417
	errMalformed    = errors.New("malformed request")                      // 400
	errTooManyConns = errors.New("too many connections from this address") // 429
	errServerFull   = errors.New("too many client connections")            // 503
	errPlainHTTP    = errors.New("cleartext HTTP sent to a TLS listener")  // 400
	errConnect      = errors.New("CONNECT is not served")                  // 405
	// errBodyStarted: a request whose body went partly to a pod cannot be
	// sent again.
	errBodyStarted = errors.New("the request body was partly sent")
	// errMisdirected: the Host belongs to another server name of the
	// listener; the client should open a connection for it.
	errMisdirected = errors.New("the host is not served under the TLS server name of this connection") // 421
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
