package k8s_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podpin/podpin/internal/k8s"
	"github.com/podpin/podpin/internal/k8stest"
)

// noCluster leaves the test without any configuration to find.
func noCluster(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
}

func TestNoConfigurationAnywhereIsErrNoConfig(t *testing.T) {
	noCluster(t)
	if _, err := k8s.NewClient(k8s.Options{}); !errors.Is(err, k8s.ErrNoConfig) {
		t.Errorf("got %v, want ErrNoConfig", err)
	}
}

func TestAMissingKubeconfigIsNamed(t *testing.T) {
	noCluster(t)
	path := filepath.Join(t.TempDir(), "nope")
	_, err := k8s.NewClient(k8s.Options{Kubeconfig: path})
	if err == nil || !strings.Contains(err.Error(), `loading kubeconfig "`+path+`"`) || errors.Is(err, k8s.ErrNoConfig) {
		t.Errorf("got %v, want an error naming %s", err, path)
	}
}

func TestTheClientReachesTheAPIServer(t *testing.T) {
	cp := k8stest.Start(t)
	file := cp.Kubeconfig(t, cp.AdminToken)
	for _, tt := range []struct {
		name       string
		kubeconfig string // the option; "" finds $KUBECONFIG
	}{
		{"from the file given", file},
		{"from $KUBECONFIG", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			noCluster(t)
			t.Setenv("KUBECONFIG", file)
			client, err := k8s.NewClient(k8s.Options{Kubeconfig: tt.kubeconfig, UserAgent: "podpin/test"})
			if err != nil {
				t.Fatal(err)
			}
			v, err := client.Discovery().ServerVersion()
			if err != nil || v.GitVersion != "v1.37.2" {
				t.Errorf("server version: got %v, %v; want v1.37.2", v, err)
			}
		})
	}
}
