package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// gatewayCRDs is the chart's folder of Gateway API CRDs.
const gatewayCRDs = chartDir + "/charts/gateway-crds"

// gatewayKinds are the plurals of the Gateway API kinds whose CRDs the chart
// ships: what podpin reads and what the conformance suite expects present.
var gatewayKinds = []string{
	"backendtlspolicies", "gatewayclasses", "gateways", "grpcroutes", "httproutes",
	"listenersets", "referencegrants", "tcproutes", "tlsroutes", "udproutes",
}

// keepLine is what scripts/gateway-crds adds to each CRD's annotations.
const keepLine = "    helm.sh/resource-policy: keep\n"

// gatewayModule is the folder and version of sigs.k8s.io/gateway-api as
// podpin's go.mod requires it, downloaded if need be.
func gatewayModule(t *testing.T) (dir, version string) {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", "sigs.k8s.io/gateway-api")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download sigs.k8s.io/gateway-api in the repository's root: %v\n%s%s", err, out, stderr.Bytes())
	}
	var m struct{ Dir, Version string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" || m.Version == "" {
		t.Fatalf("go mod download printed %s (%v), want the module's Dir and Version", out, err)
	}
	return m.Dir, m.Version
}

// The chart's CRDs are the module's experimental channel, file by file, with
// only the keep policy added: bumping sigs.k8s.io/gateway-api in go.mod
// without running scripts/gateway-crds fails here.
func TestGatewayCRDsAreTheModules(t *testing.T) {
	dir, version := gatewayModule(t)
	var want []string
	for _, k := range gatewayKinds {
		want = append(want, "gateway.networking.k8s.io_"+k+".yaml")
	}
	entries, err := os.ReadDir(gatewayCRDs + "/crds")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Errorf("files in %s/crds: got %v, want %v", gatewayCRDs, got, want)
	}
	for _, name := range want {
		src, err := os.ReadFile(filepath.Join(dir, "config/crd/experimental", name))
		if err != nil {
			t.Fatal(err)
		}
		const meta = "\nmetadata:\n  annotations:\n"
		if n := bytes.Count(src, []byte(meta)); n != 1 {
			t.Fatalf("%s of %s: %d metadata annotations blocks, want 1", name, version, n)
		}
		wantCopy := bytes.Replace(src, []byte(meta), []byte(meta+keepLine), 1)
		copied, err := os.ReadFile(filepath.Join(gatewayCRDs, "crds", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(copied, wantCopy) {
			t.Errorf("%s differs from sigs.k8s.io/gateway-api %s's experimental channel; run scripts/gateway-crds", name, version)
		}
	}

	// The subchart's version follows the module's, and the chart depends on
	// that version.
	var sub struct{ Version, AppVersion string }
	readYAML(t, gatewayCRDs+"/Chart.yaml", &sub)
	if sub.Version != strings.TrimPrefix(version, "v") || sub.AppVersion != version {
		t.Errorf("gateway-crds Chart.yaml: version %q appVersion %q, want %q and %q; run scripts/gateway-crds",
			sub.Version, sub.AppVersion, strings.TrimPrefix(version, "v"), version)
	}
	var parent struct {
		Dependencies []struct{ Name, Version, Condition string }
	}
	readYAML(t, chartDir+"/Chart.yaml", &parent)
	if len(parent.Dependencies) != 1 || parent.Dependencies[0].Name != "gateway-crds" ||
		parent.Dependencies[0].Version != sub.Version || parent.Dependencies[0].Condition != "gateway.installCRDs" {
		t.Errorf("chart dependencies %+v, want gateway-crds %s under the condition gateway.installCRDs", parent.Dependencies, sub.Version)
	}
}

// readYAML decodes the YAML file at path into v.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// renderCRDs renders the chart as helm template --include-crds does, with
// values (YAML) over the defaults.
func renderCRDs(t *testing.T, values string) []byte {
	t.Helper()
	vals, err := ReadValues([]string{valuesFile(t, values)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(t.Context(), chartDir, Options{Release: "podpin", Namespace: "podpin-system", Values: vals, IncludeCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// crdObject is the part of a CRD the tests read.
type crdObject struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

// crdsIn returns the CRDs of a rendering, in order.
func crdsIn(t *testing.T, out []byte) []crdObject {
	t.Helper()
	var crds []crdObject
	for _, doc := range documents(out) {
		var o crdObject
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("document does not parse: %v\n%.300s", err, doc)
		}
		if o.Kind == "CustomResourceDefinition" {
			crds = append(crds, o)
		}
	}
	return crds
}

// The CRDs come only with gateway.installCRDs, then all of them, experimental
// channel of the module's version, kept on uninstall. gateway.enabled alone
// does not bring them: the cluster may have its own.
func TestGatewayCRDsOnlyWithInstallCRDs(t *testing.T) {
	for _, values := range []string{"{}", "gateway: {enabled: true, installCRDs: false}\nservice: {port: 8000}"} {
		if crds := crdsIn(t, renderCRDs(t, values+"\n")); len(crds) > 0 {
			t.Errorf("values %q: rendered %d CRDs, want none", values, len(crds))
		}
	}

	_, version := gatewayModule(t)
	crds := crdsIn(t, renderCRDs(t, "gateway: {installCRDs: true}\n"))
	var names []string
	for _, c := range crds {
		names = append(names, c.Metadata.Name)
		a := c.Metadata.Annotations
		if a["helm.sh/resource-policy"] != "keep" || a["gateway.networking.k8s.io/channel"] != "experimental" ||
			a["gateway.networking.k8s.io/bundle-version"] != version {
			t.Errorf("CRD %s annotations %v, want keep, the experimental channel and bundle version %s", c.Metadata.Name, a, version)
		}
	}
	var want []string
	for _, k := range gatewayKinds {
		want = append(want, k+".gateway.networking.k8s.io")
	}
	if !slices.Equal(names, want) {
		t.Errorf("CRDs: got %v, want %v", names, want)
	}
}

// gatewayClass is the part of a GatewayClass the tests read.
type gatewayClass struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		ControllerName string `json:"controllerName"`
		Description    string `json:"description"`
	} `json:"spec"`
}

// gateway.enabled reaches podpin's arguments, creates the GatewayClass of
// its controller name, exposes gateway.ports on the Service and the pods,
// and lets the pods bind ports under 1024; without it, none of that.
func TestGatewayValuesReachTheObjects(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		args         []string
		class        string // GatewayClass name and controller, "" for none
		ports        []int32
	}{
		{name: "off by default", values: "{}"},
		{
			name:   "on with its defaults",
			values: "gateway: {enabled: true}\nservice: {port: 8000}",
			args:   []string{"--gateway", "--gateway-controller-name=podpin.io/gateway-controller"},
			class:  "podpin podpin.io/gateway-controller",
			ports:  []int32{80, 443},
		},
		{
			name: "an address prefix, a controller name and a class of its own",
			values: `gateway: {enabled: true, addresses: 10.9.0.0/24, controllerName: example.com/edge,
  gatewayClass: {name: edge}, ports: [8000, 9443]}`,
			args:  []string{"--gateway", "--gateway-controller-name=example.com/edge", "--gateway-addresses=10.9.0.0/24"},
			class: "edge example.com/edge",
			ports: []int32{8000, 9443},
		},
		{
			name:   "no GatewayClass",
			values: "gateway: {enabled: true, gatewayClass: {create: false}, ports: [81]}",
			args:   []string{"--gateway", "--gateway-controller-name=podpin.io/gateway-controller"},
			ports:  []int32{81},
		},
	} {
		out := mustRender(t, tc.values+"\n")
		d := podpinDeployment(t, out)
		var args []string
		for _, a := range d.Spec.Template.Spec.Containers[0].Args {
			if strings.HasPrefix(a, "--gateway") {
				args = append(args, a)
			}
		}
		if !slices.Equal(args, tc.args) {
			t.Errorf("%s: gateway arguments %q, want %q", tc.name, args, tc.args)
		}

		var gc gatewayClass
		found := findObject(t, out, "GatewayClass", "", &gc)
		got := ""
		if found {
			got = gc.Metadata.Name + " " + gc.Spec.ControllerName
			if gc.APIVersion != "gateway.networking.k8s.io/v1" || gc.Metadata.Labels["app.kubernetes.io/instance"] != "podpin" {
				t.Errorf("%s: GatewayClass apiVersion %q labels %v, want gateway.networking.k8s.io/v1 and the release's labels", tc.name, gc.APIVersion, gc.Metadata.Labels)
			}
		}
		if got != tc.class {
			t.Errorf("%s: GatewayClass %q, want %q", tc.name, got, tc.class)
		}

		var svc corev1.Service
		objectNamed(t, out, "Service", "podpin", &svc)
		var svcPorts []int32
		for _, p := range svc.Spec.Ports {
			if strings.HasPrefix(p.Name, "gw-") {
				svcPorts = append(svcPorts, p.Port)
				if p.TargetPort.IntVal != p.Port || p.Protocol != corev1.ProtocolTCP {
					t.Errorf("%s: Service port %s: %d to %v %s, want the same port over TCP", tc.name, p.Name, p.Port, p.TargetPort.String(), p.Protocol)
				}
			}
		}
		if !slices.Equal(svcPorts, tc.ports) {
			t.Errorf("%s: the Service's gateway ports %v, want %v", tc.name, svcPorts, tc.ports)
		}
		var podPorts []int32
		for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
			if strings.HasPrefix(p.Name, "gw-") {
				podPorts = append(podPorts, p.ContainerPort)
			}
		}
		if !slices.Equal(podPorts, tc.ports) {
			t.Errorf("%s: the container's gateway ports %v, want %v", tc.name, podPorts, tc.ports)
		}

		sysctls := d.Spec.Template.Spec.SecurityContext.Sysctls
		low := len(sysctls) == 1 && sysctls[0].Name == "net.ipv4.ip_unprivileged_port_start" && sysctls[0].Value == "0"
		if on := tc.args != nil; low != on || (!on && len(sysctls) > 0) {
			t.Errorf("%s: pod sysctls %v, want net.ipv4.ip_unprivileged_port_start=0 only with gateway.enabled", tc.name, sysctls)
		}
	}
}

// A gateway port the Ingress listener's Service or the pods' own listeners
// take fails the rendering, naming both values.
func TestGatewayPortsMustBeFree(t *testing.T) {
	for _, tc := range []struct {
		name, values, want string
	}{
		{"the Ingress Service port", "gateway: {enabled: true}", "gateway.ports: 80 is taken by service.port"},
		{"the Ingress TLS Service port", "gateway: {enabled: true}\nservice: {port: 8000}\nlistener: {tls: {secretNames: [edge-tls]}}", "gateway.ports: 443 is taken by service.tlsPort"},
		{"the pods' Ingress listener", "gateway: {enabled: true, ports: [8080]}", "gateway.ports: 8080 is taken by the pods' Ingress listener"},
		{"the admin port", "gateway: {enabled: true, ports: [9901]}", "gateway.ports: 9901 is taken by admin.port"},
	} {
		out, err := renderValues(t, tc.values+"\n")
		if err == nil {
			t.Errorf("%s: rendered, want an error %q:\n%.300s", tc.name, tc.want, out)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to say %q", tc.name, err, tc.want)
		}
	}
	// A port the Ingress side takes is free while the gateway is off, and
	// so is 443 without a TLS listener.
	mustRender(t, "gateway: {enabled: false, ports: [80]}\n")
	mustRender(t, "gateway: {enabled: true, ports: [443]}\n")
}

// The schema refuses gateway values podpin cannot take, naming them.
func TestSchemaRefusesBadGatewayValues(t *testing.T) {
	for _, tc := range []struct {
		name, values, want string
	}{
		{"a port that is not a number", "gateway: {ports: [http]}", "/gateway/ports/0"},
		{"a port out of range", "gateway: {ports: [70000]}", "/gateway/ports/0"},
		{"a port twice", "gateway: {ports: [80, 80]}", "/gateway/ports"},
		{"a controller name without a path", "gateway: {controllerName: podpin}", "/gateway/controllerName"},
		{"an address that is no prefix", "gateway: {addresses: 10.0.0.1}", "/gateway/addresses"},
		{"a GatewayClass name Kubernetes refuses", "gateway: {gatewayClass: {name: Podpin_Class}}", "/gateway/gatewayClass/name"},
		{"an unknown gateway value", "gateway: {installCrds: true}", "'installCrds' not allowed"},
		{"a value for the CRDs' subchart", "gateway-crds: {channel: standard}", "'channel' not allowed"},
	} {
		vals, err := ReadValues([]string{valuesFile(t, tc.values+"\n")})
		if err != nil {
			t.Fatal(err)
		}
		err = Lint(chartDir, "podpin-system", vals)
		if !errors.Is(err, ErrLint) {
			t.Errorf("%s: got %v, want an error wrapping ErrLint", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not name %s", tc.name, err, tc.want)
		}
	}
}
