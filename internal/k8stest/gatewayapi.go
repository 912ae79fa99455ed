package k8stest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// GatewayAPIVersion is the release of the Gateway API whose CRDs
// [ControlPlane.InstallGatewayAPICRDs] installs, the version of
// sigs.k8s.io/gateway-api in go.mod.
const GatewayAPIVersion = "v1.7.0"

// crdEstablishTimeout bounds how long InstallGatewayAPICRDs waits.
const crdEstablishTimeout = time.Minute

// GatewayAPICRDDir returns the folder of the Gateway API CRDs that tests
// install: the Helm chart's (deploy/helm/podpin/charts/gateway-crds/crds),
// the experimental channel of the module sigs.k8s.io/gateway-api as
// scripts/gateway-crds copies it, so the tests run on what users install.
func GatewayAPICRDDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("finding the repository: no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "helm", "podpin", "charts", "gateway-crds", "crds"), nil
}

// ModuleDir returns the folder of the module mod, at the version go.mod
// requires, such as sigs.k8s.io/gateway-api/conformance for the suite's
// base manifests. It runs go list, so the go command must be on PATH, as it
// is for go test.
func ModuleDir(mod string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("finding module %s: go list: %w: %s", mod, err, bytes.TrimSpace(stderr.Bytes()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("finding module %s: not downloaded (run go mod download)", mod)
	}
	return dir, nil
}

// InstallGatewayAPICRDs creates the Gateway API CRDs of [GatewayAPICRDDir]
// (experimental channel, [GatewayAPIVersion]) in the control plane and
// waits until each is Established and its names accepted, which takes a
// few seconds. Objects in that folder that are not CRDs, such as the
// ValidatingAdmissionPolicy of safe upgrades, are left out. It returns the
// names of the CRDs.
func (cp *ControlPlane) InstallGatewayAPICRDs(t testing.TB) []string {
	t.Helper()
	dir, err := GatewayAPICRDDir()
	if err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	crds, err := readCRDs(dir)
	if err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	if len(crds) == 0 {
		t.Fatalf("k8stest: no CustomResourceDefinition in %s", dir)
	}
	client, err := apiextensions.NewForConfig(cp.Config)
	if err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	api := client.ApiextensionsV1().CustomResourceDefinitions()
	ctx := t.Context()
	var names []string
	for _, crd := range crds {
		if _, err := api.Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("k8stest: creating CRD %s: %v", crd.Name, err)
		}
		names = append(names, crd.Name)
	}

	var waiting string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, crdEstablishTimeout, true,
		func(ctx context.Context) (bool, error) {
			for _, name := range names {
				crd, err := api.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					waiting = fmt.Sprintf("%s: %v", name, err)
					return false, nil
				}
				if !crdCondition(crd, apiextensionsv1.Established) || !crdCondition(crd, apiextensionsv1.NamesAccepted) {
					waiting = name + " is not Established yet"
					return false, nil
				}
			}
			return true, nil
		})
	if err != nil {
		t.Fatalf("k8stest: Gateway API CRDs not established after %v: %s", crdEstablishTimeout, waiting)
	}
	slices.Sort(names)
	return names
}

// readCRDs decodes every CustomResourceDefinition in the YAML files of dir.
func readCRDs(dir string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no YAML files in %s", dir)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := dec.Decode(&crd); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if crd.Kind == "CustomResourceDefinition" {
				crds = append(crds, &crd)
			}
		}
	}
	return crds, nil
}

func crdCondition(crd *apiextensionsv1.CustomResourceDefinition, typ apiextensionsv1.CustomResourceDefinitionConditionType) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == typ {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}
