package k8s

import "errors"

// ErrNoConfig means no configuration was found: no Kubeconfig given, not in
// a cluster, and neither $KUBECONFIG nor ~/.kube/config usable.
var ErrNoConfig = errors.New("no Kubernetes config")
