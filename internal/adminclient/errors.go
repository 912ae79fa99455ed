package adminclient

import "errors"

var (
	// ErrAddress means Options.Address is not an address of the API.
	ErrAddress = errors.New("want host:port or http://host:port")
	// ErrUnreachable wraps a request that got no answer: nothing
	// listening, a timeout, a network failure.
	ErrUnreachable = errors.New("cannot reach the admin API")
)

// StatusError is an error answer of the API: its HTTP status and its
// one-line message.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return e.Message }
