// Package k8s builds the Kubernetes client that podpin's discovery of
// Service pods and its Ingress controller share: one client, one connection
// pool, one place that finds the cluster's address and credentials.
//
// The configuration comes from, in order: the kubeconfig file named in
// Options.Kubeconfig; the pod's service account when podpin runs in a
// cluster; $KUBECONFIG or ~/.kube/config.
//
//	client, err := k8s.NewClient(k8s.Options{UserAgent: "podpin/v1.2.3"})
//
// What the client may do is up to its credentials: the Helm chart's
// ClusterRole (deploy/helm/podpin) grants what podpin reads and writes.
package k8s

import (
	"errors"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options say where the client's configuration comes from.
type Options struct {
	// Kubeconfig is a kubeconfig file. Empty: the in-cluster configuration,
	// else $KUBECONFIG or ~/.kube/config.
	Kubeconfig string
	// UserAgent names podpin in the API server's logs and audit records.
	// Empty: client-go's default.
	UserAgent string
}

// NewClient returns a client as o says. It does not contact the API server.
func NewClient(o Options) (kubernetes.Interface, error) {
	rc, err := RestConfig(o)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	return client, nil
}

// RestConfig is the configuration of the clients o describes, for the
// clients of other API groups (the Gateway API's).
func RestConfig(o Options) (*rest.Config, error) {
	rc, err := restConfig(o.Kubeconfig)
	if err != nil {
		return nil, err
	}
	if o.UserAgent != "" {
		rc.UserAgent = o.UserAgent
	}
	return rc, nil
}

// restConfig loads the client configuration from path, or else from the
// pod's service account when running in a cluster, or else from
// $KUBECONFIG or ~/.kube/config.
func restConfig(path string) (*rest.Config, error) {
	if path != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %q: %w", path, err)
		}
		return rc, nil
	}
	rc, err := rest.InClusterConfig()
	if err == nil {
		return rc, nil
	}
	if !errors.Is(err, rest.ErrNotInCluster) {
		return nil, fmt.Errorf("loading the in-cluster Kubernetes config: %w", err)
	}
	rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: not in a cluster, and $KUBECONFIG or ~/.kube/config: %w", ErrNoConfig, err)
	}
	return rc, nil
}
