package main

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// renderValues renders the chart with one values file holding text; it
// returns the rendering or the error.
func renderValues(t *testing.T, text string) ([]byte, error) {
	t.Helper()
	vals, err := ReadValues([]string{valuesFile(t, text)})
	if err != nil {
		t.Fatal(err)
	}
	return Render(t.Context(), chartDir, Options{Release: "podpin", Namespace: "podpin-system", Values: vals})
}

// mustRender is renderValues that fails the test on an error.
func mustRender(t *testing.T, text string) []byte {
	t.Helper()
	out, err := renderValues(t, text)
	if err != nil {
		t.Fatalf("values %q: %v", text, err)
	}
	return out
}

// configFile is podpin's configuration file in the rendering, decoded.
func configFile(t *testing.T, out []byte) map[string]any {
	t.Helper()
	var cm corev1.ConfigMap
	object(t, out, "ConfigMap", &cm)
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["podpin.yaml"]), &cfg); err != nil {
		t.Fatalf("configuration file: %v\n%s", err, cm.Data["podpin.yaml"])
	}
	return cfg
}

// at walks a decoded document by keys.
func at(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// podpinDeployment is the Deployment of podpin (not of the bundled store).
func podpinDeployment(t *testing.T, out []byte) appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	objectNamed(t, out, "Deployment", "podpin", &d)
	return d
}

// With its defaults the chart runs a store of its own and every replica
// uses it: the default install is sticky across replicas.
func TestDefaultsShareOneTableInTheBundledStore(t *testing.T) {
	out := render(t)
	cfg := configFile(t, out)
	if got := at(cfg, "store", "type"); got != "redis" {
		t.Errorf("store.type: got %v, want redis", got)
	}
	if got := at(cfg, "store", "redis", "url"); got != "redis://podpin-store.podpin-system.svc:6379" {
		t.Errorf("store.redis.url: got %v, want the bundled store's Service", got)
	}

	var store appsv1.Deployment
	objectNamed(t, out, "Deployment", "podpin-store", &store)
	if store.Spec.Replicas == nil || *store.Spec.Replicas != 1 {
		t.Errorf("bundled store replicas: got %v, want 1", store.Spec.Replicas)
	}
	c := store.Spec.Template.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--maxmemory 200mb", "--maxmemory-policy allkeys-lru", "--appendonly no"} {
		if !strings.Contains(args, want) {
			t.Errorf("bundled store args %q lack %q", args, want)
		}
	}
	if c.Resources.Limits.Memory().Cmp(*resourceOf("200M")) <= 0 {
		t.Errorf("bundled store memory limit %v does not exceed maxmemory 200mb", c.Resources.Limits.Memory())
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("bundled store container: root filesystem not read-only")
	}

	var svc corev1.Service
	objectNamed(t, out, "Service", "podpin-store", &svc)
	if !mapsEqual(svc.Spec.Selector, store.Spec.Template.Labels) || svc.Spec.Ports[0].Port != 6379 {
		t.Errorf("bundled store Service: selector %v port %d, want the store's labels %v and 6379",
			svc.Spec.Selector, svc.Spec.Ports[0].Port, store.Spec.Template.Labels)
	}

	// Only podpin's pods reach it.
	var np networkingv1.NetworkPolicy
	objectNamed(t, out, "NetworkPolicy", "podpin-store", &np)
	podpin := podpinDeployment(t, out)
	if !mapsEqual(np.Spec.PodSelector.MatchLabels, store.Spec.Template.Labels) {
		t.Errorf("NetworkPolicy selects %v, want the store's pods %v", np.Spec.PodSelector.MatchLabels, store.Spec.Template.Labels)
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 ||
		!mapsEqual(np.Spec.Ingress[0].From[0].PodSelector.MatchLabels, podpin.Spec.Template.Labels) {
		t.Errorf("NetworkPolicy ingress %+v, want only from podpin's pods %v", np.Spec.Ingress, podpin.Spec.Template.Labels)
	}
	if mapsEqual(store.Spec.Template.Labels, podpin.Spec.Template.Labels) {
		t.Errorf("the store's pods carry podpin's labels %v: podpin's Service would send clients to them", podpin.Spec.Template.Labels)
	}
}

// A Redis of the user's replaces the bundled store; so does turning it off
// with an address given.
func TestOwnRedisReplacesTheBundledStore(t *testing.T) {
	for _, values := range []string{
		"store: {redis: {url: 'rediss://redis.example:6380/2'}}",
		"store: {redis: {addrs: ['sentinel:26379'], masterName: main}}",
		"store: {bundled: {enabled: false}, redis: {url: 'redis://r:6379'}}",
	} {
		out := mustRender(t, values)
		for _, kind := range []string{"NetworkPolicy", "Deployment", "Service"} {
			if findObject(t, out, kind, "podpin-store", &map[string]any{}) {
				t.Errorf("values %q: a %s of the bundled store is rendered", values, kind)
			}
		}
		if got := at(configFile(t, out), "store", "redis", "url"); strings.Contains(fmt.Sprint(got), "podpin-store") {
			t.Errorf("values %q: store.redis.url %v is the bundled store's", values, got)
		}
	}
}

// Values that render but cannot work fail, saying which value to change.
func TestUnsafeCombinationsFailToRender(t *testing.T) {
	for _, tc := range []struct {
		name, values, want string
	}{
		{"memory tables on two replicas", "store: {type: memory}", "store.acceptPerReplicaTables"},
		{"memory tables under an autoscaler", "store: {type: memory}\nreplicaCount: 1\nautoscaling: {enabled: true}", "store.acceptPerReplicaTables"},
		{"redis without an address or the bundled store", "store: {bundled: {enabled: false}}", "store.redis.url or store.redis.addrs"},
		{"both a url and addrs", "store: {redis: {url: 'redis://a:6379', addrs: ['b:6379']}}", "url or addrs, not both"},
		{"a Cluster without its nodes", "store: {redis: {cluster: true}}", "store.redis.cluster needs"},
		{"one state claim for two replicas", "state: {existingClaim: tables}", "state.existingClaim"},
		{"an autoscaler whose minimum exceeds its maximum", "autoscaling: {enabled: true, minReplicas: 5, maxReplicas: 3}", "autoscaling.minReplicas"},
	} {
		out, err := renderValues(t, tc.values)
		if err == nil {
			t.Errorf("%s: rendered, want an error naming %s:\n%.300s", tc.name, tc.want, out)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not name %s", tc.name, err, tc.want)
		}
	}
	// What is safe renders.
	for _, values := range []string{
		"store: {type: memory}\nreplicaCount: 1",
		"store: {type: memory, acceptPerReplicaTables: true}\nreplicaCount: 3",
		"replicaCount: 1\nstate: {existingClaim: tables}",
	} {
		mustRender(t, values)
	}
}

// The pods' checksum/config follows what podpin reads only at start, so
// helm upgrade rolls the pods when one of those changes; static routes are
// reloaded live and roll nothing.
func TestConfigChecksumFollowsStartSettings(t *testing.T) {
	checksum := func(values string) string {
		d := podpinDeployment(t, mustRender(t, values))
		return d.Spec.Template.Annotations["checksum/config"]
	}
	base := checksum("{}")
	if len(base) != 64 {
		t.Fatalf("checksum/config: got %q, want a sha256", base)
	}
	for _, values := range []string{
		"shutdown: {delay: 7s}",
		"limits: {maxConnections: 500}",
		"podHeader: ''",
		"store: {redis: {url: 'redis://other:6379'}}",
		"state: {interval: 30s}",
		"keySecret: {secretName: digest}",
	} {
		if checksum(values) == base {
			t.Errorf("values %q: checksum/config unchanged", values)
		}
	}
	routes := "staticRoutes: [{name: static, match: {host: a.example}, backends: [{name: a, url: 'http://a:80'}]}]"
	if got := checksum(routes); got != base {
		t.Errorf("a static route changed checksum/config (%s, was %s); routes reload without a restart", got, base)
	}
	if got := checksum("{}"); got != base {
		t.Errorf("the same values rendered checksum/config %s, then %s", base, got)
	}
}

// The admin token's checksum is its own: a new token rolls the pods.
func TestAdminTokenChecksumFollowsTheToken(t *testing.T) {
	out := mustRender(t, "admin: {token: {value: first}}")
	var s corev1.Secret
	objectNamed(t, out, "Secret", "podpin-admin-token", &s)
	if string(s.Data["token"]) != "first" {
		t.Errorf("Secret token: got %q, want first", s.Data["token"])
	}
	d := podpinDeployment(t, out)
	if got, want := d.Spec.Template.Annotations["checksum/admin-token"], fmt.Sprintf("%x", sha256.Sum256([]byte("first"))); got != want {
		t.Errorf("checksum/admin-token: got %s, want %s", got, want)
	}
	second := podpinDeployment(t, mustRender(t, "admin: {token: {value: second}}"))
	if second.Spec.Template.Annotations["checksum/admin-token"] == d.Spec.Template.Annotations["checksum/admin-token"] {
		t.Errorf("a new token left checksum/admin-token unchanged")
	}
	// Reaching no cluster, the chart cannot keep a generated token across
	// upgrades: it renders no Secret, and the pods wait for the user's.
	if findObject(t, render(t), "Secret", "", &corev1.Secret{}) {
		t.Errorf("rendered without a cluster, the chart has a Secret")
	}
}

// With autoscaling the Deployment has no replicas field, so an upgrade
// keeps the count the HorizontalPodAutoscaler chose.
func TestAutoscalingOwnsTheReplicaCount(t *testing.T) {
	out := mustRender(t, "autoscaling: {enabled: true, minReplicas: 3, maxReplicas: 9, targetMemoryUtilizationPercentage: 80}")
	d := podpinDeployment(t, out)
	if d.Spec.Replicas != nil {
		t.Errorf("replicas: got %d, want none with autoscaling", *d.Spec.Replicas)
	}
	var hpa autoscalingv2.HorizontalPodAutoscaler
	object(t, out, "HorizontalPodAutoscaler", &hpa)
	if hpa.Spec.ScaleTargetRef.Name != "podpin" || *hpa.Spec.MinReplicas != 3 || hpa.Spec.MaxReplicas != 9 || len(hpa.Spec.Metrics) != 2 {
		t.Errorf("HPA: got %+v, want podpin from 3 to 9 on CPU and memory", hpa.Spec)
	}
	if findObject(t, render(t), "HorizontalPodAutoscaler", "", &autoscalingv2.HorizontalPodAutoscaler{}) {
		t.Errorf("an HPA is rendered by default")
	}
}

// The state file lives on a volume: an emptyDir by default, or a claim.
func TestStateFileHasAVolume(t *testing.T) {
	cfg := configFile(t, render(t))
	if got := at(cfg, "state", "file"); got != "/var/lib/podpin/tables.snapshot" {
		t.Errorf("state.file: got %v", got)
	}
	d := podpinDeployment(t, render(t))
	if v := volume(d, "state"); v == nil || v.EmptyDir == nil {
		t.Errorf("state volume: got %+v, want an emptyDir", v)
	}
	if !slices.ContainsFunc(d.Spec.Template.Spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == "state" && m.MountPath == "/var/lib/podpin"
	}) {
		t.Errorf("the state volume is not mounted at /var/lib/podpin")
	}

	d = podpinDeployment(t, mustRender(t, "replicaCount: 1\nstate: {existingClaim: podpin-tables}"))
	if v := volume(d, "state"); v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "podpin-tables" {
		t.Errorf("state volume with a claim: got %+v", v)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy with a state claim: got %s, want Recreate", d.Spec.Strategy.Type)
	}

	out := mustRender(t, "state: {enabled: false}")
	if at(configFile(t, out), "state") != nil || volume(podpinDeployment(t, out), "state") != nil {
		t.Errorf("state.enabled false still renders a state file or volume")
	}
}

func volume(d appsv1.Deployment, name string) *corev1.Volume {
	for i, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &d.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

// Every edge setting reaches podpin's configuration file or its pods.
func TestEdgeSettingsReachThePods(t *testing.T) {
	out := mustRender(t, `
podHeader: ""
limits: {headerTimeout: 5s, maxConnections: 2000, maxBodyBytes: 1048576}
upstream: {connectTimeout: 1s, responseTimeout: 2m}
keySecret: {secretName: podpin-digest, key: k}
store:
  redis:
    url: rediss://redis.example:6380
    username: podpin
    db: 3
    passwordSecret: {name: redis-auth}
    tls: {enabled: true, caSecret: {name: redis-ca}, serverName: redis.internal}
priorityClassName: edge-critical
topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule,
     labelSelector: {matchLabels: {app.kubernetes.io/name: podpin}}}
`)
	cfg := configFile(t, out)
	for _, tc := range []struct {
		path []string
		want any
	}{
		{[]string{"podHeader"}, ""},
		{[]string{"limits", "headerTimeout"}, "5s"},
		{[]string{"limits", "maxConnections"}, float64(2000)},
		{[]string{"limits", "maxBodyBytes"}, float64(1048576)},
		{[]string{"upstream", "connectTimeout"}, "1s"},
		{[]string{"upstream", "responseTimeout"}, "2m"},
		{[]string{"keySecret", "env"}, "PODPIN_KEY_SECRET"},
		{[]string{"store", "redis", "username"}, "podpin"},
		{[]string{"store", "redis", "db"}, float64(3)},
		{[]string{"store", "redis", "tls"}, true},
		{[]string{"store", "redis", "tlsCAFile"}, "/etc/podpin/redis-ca/ca.crt"},
		{[]string{"store", "redis", "tlsServerName"}, "redis.internal"},
		{[]string{"store", "redis", "passwordEnv"}, "REDIS_PASSWORD"},
		{[]string{"store", "redis", "timeout"}, "250ms"},
	} {
		if got := at(cfg, tc.path...); got != tc.want {
			t.Errorf("%s: got %v (%T), want %v", strings.Join(tc.path, "."), got, got, tc.want)
		}
	}
	d := podpinDeployment(t, out)
	spec := d.Spec.Template.Spec
	if spec.PriorityClassName != "edge-critical" {
		t.Errorf("priorityClassName: got %q", spec.PriorityClassName)
	}
	if len(spec.TopologySpreadConstraints) != 1 || spec.TopologySpreadConstraints[0].TopologyKey != "topology.kubernetes.io/zone" {
		t.Errorf("topologySpreadConstraints: got %+v, want the zone constraint alone", spec.TopologySpreadConstraints)
	}
	var env []string
	for _, e := range spec.Containers[0].Env {
		env = append(env, e.Name+"="+e.ValueFrom.SecretKeyRef.Name+"/"+e.ValueFrom.SecretKeyRef.Key)
	}
	if want := []string{"REDIS_PASSWORD=redis-auth/password", "PODPIN_KEY_SECRET=podpin-digest/k"}; !slices.Equal(env, want) {
		t.Errorf("env: got %v, want %v", env, want)
	}
	if v := volume(d, "redis-ca"); v == nil || v.Secret == nil || v.Secret.SecretName != "redis-ca" {
		t.Errorf("redis-ca volume: got %+v", v)
	}
	for _, a := range []string{"checksum/key-secret", "checksum/redis-password", "checksum/redis-ca", "checksum/admin-token"} {
		if d.Spec.Template.Annotations[a] == "" {
			t.Errorf("pod template lacks %s", a)
		}
	}
	// Defaults: the pod header on, podpin's own limits.
	cfg = configFile(t, render(t))
	if at(cfg, "podHeader") != "X-Podpin-Pod" || at(cfg, "limits") != nil || at(cfg, "keySecret") != nil {
		t.Errorf("default configuration: podHeader %v, limits %v, keySecret %v", at(cfg, "podHeader"), at(cfg, "limits"), at(cfg, "keySecret"))
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func resourceOf(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

func TestTLSSecretsReachTheListener(t *testing.T) {
	out := mustRender(t, `
listener:
  tls: {secretNames: [web-default, web-apps], minVersion: "1.3"}
`)
	cfg := configFile(t, out)
	ls := at(cfg, "listeners").([]any)
	if len(ls) != 2 || at(ls[0], "address") != ":8080" || at(ls[0], "tls") != nil || at(ls[1], "address") != ":8443" {
		t.Fatalf("listeners: got %v, want cleartext :8080 (for the redirect to https) and TLS :8443", ls)
	}
	l := ls[1]
	if got := at(l, "tls", "minVersion"); got != "1.3" {
		t.Errorf("minVersion: got %v, want 1.3", got)
	}
	certs, _ := at(l, "tls", "certificates").([]any)
	if len(certs) != 2 || at(certs[0], "certFile") != "/etc/podpin/tls/0/tls.crt" || at(certs[1], "keyFile") != "/etc/podpin/tls/1/tls.key" {
		t.Errorf("certificates: got %v, want the two Secrets' files in order", certs)
	}
	d := podpinDeployment(t, out)
	for i, name := range []string{"web-default", "web-apps"} {
		v := volume(d, fmt.Sprintf("tls-%d", i))
		if v == nil || v.Secret == nil || v.Secret.SecretName != name {
			t.Errorf("volume tls-%d: got %+v, want Secret %s", i, v, name)
		}
		mounted := false
		for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
			mounted = mounted || m.Name == fmt.Sprintf("tls-%d", i) && m.MountPath == fmt.Sprintf("/etc/podpin/tls/%d", i)
		}
		if !mounted {
			t.Errorf("volume tls-%d is not mounted at /etc/podpin/tls/%d", i, i)
		}
	}
	var svc corev1.Service
	objectNamed(t, out, "Service", "podpin", &svc)
	if p := svc.Spec.Ports; len(p) != 2 || p[0].Port != 80 || p[0].TargetPort.StrVal != "http" || p[1].Port != 443 || p[1].TargetPort.StrVal != "https" {
		t.Errorf("Service ports: got %+v, want http on 80 and https on 443", p)
	}
	httpsPort := false
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		httpsPort = httpsPort || p.Name == "https" && p.ContainerPort == 8443
	}
	if !httpsPort {
		t.Errorf("container ports: got %+v, want https on 8443", d.Spec.Template.Spec.Containers[0].Ports)
	}

	// Without Secrets: cleartext on port 80.
	out = render(t)
	if at(at(configFile(t, out), "listeners").([]any)[0], "tls") != nil {
		t.Errorf("default configuration has a tls block")
	}
	objectNamed(t, out, "Service", "podpin", &svc)
	if p := svc.Spec.Ports; len(p) != 1 || p[0].Port != 80 || p[0].Name != "http" {
		t.Errorf("default Service ports: got %+v, want http on 80", p)
	}
	if _, err := renderValues(t, "listener: {tls: {minVersion: \"1.1\"}}"); err == nil {
		t.Errorf("minVersion 1.1: rendered, want the schema to refuse it")
	}
}
