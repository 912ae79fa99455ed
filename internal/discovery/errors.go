package discovery

import "errors"

// ErrNoKubernetes is the error of a route that names a Service when podpin
// has no Kubernetes client: it was started without one (no route named a
// Service then), and adding the first such route needs a restart.
var ErrNoKubernetes = errors.New("finding pods by service needs a Kubernetes client, which podpin did not start with")
