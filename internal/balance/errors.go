package balance

import "errors"

// ErrUnknown is wrapped by the error New returns for a name that is not one of Names.
var ErrUnknown = errors.New("unknown balancer")
