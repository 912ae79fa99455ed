{{/* podpin.fullname is the name of every object: the release name, or
release-podpin when the release name does not contain the chart name. */}}
{{- define "podpin.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "podpin.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "podpin.labels" -}}
{{ include "podpin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* podpin.storeName is the name of the bundled store's objects. */}}
{{- define "podpin.storeName" -}}
{{- printf "%s-store" (include "podpin.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "podpin.storeSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-store
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* podpin.bundledStore is "true" when the chart runs the shared table's
Redis itself: store type redis, no url or addrs of the user's. */}}
{{- define "podpin.bundledStore" -}}
{{- $r := .Values.store.redis -}}
{{- if and (eq .Values.store.type "redis") .Values.store.bundled.enabled (not $r.url) (not $r.addrs) -}}
true
{{- end -}}
{{- end -}}

{{/* podpin.online is "true" when the chart is rendered against a cluster
(helm install or upgrade), where lookup answers; helm template reads no
cluster and sees no kube-system namespace. */}}
{{- define "podpin.online" -}}
{{- if lookup "v1" "Namespace" "" "kube-system" -}}
true
{{- end -}}
{{- end -}}

{{/* podpin.secretChecksum is the sha256 of the data of Secret name in the
release namespace as the cluster holds it (empty offline, or when name is
empty), so a pod template changes when a Secret it reads at start does. */}}
{{- define "podpin.secretChecksum" -}}
{{- $s := dict -}}
{{- if .name -}}
{{- $s = lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- end -}}
{{- get (default dict $s) "data" | default dict | toJson | sha256sum -}}
{{- end -}}

{{/* podpin.validate fails the rendering on combinations of values that
render but cannot work. */}}
{{- define "podpin.validate" -}}
{{- $many := or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled -}}
{{- if and (eq .Values.store.type "memory") $many (not .Values.store.acceptPerReplicaTables) -}}
{{- fail "store.type memory with more than one replica (replicaCount > 1 or autoscaling.enabled): each replica would pin a session on its own and one key could reach two pods. Use store.type redis (the bundled store, or store.redis.url or addrs), or set store.acceptPerReplicaTables to true" -}}
{{- end -}}
{{- $r := .Values.store.redis -}}
{{- if and (eq .Values.store.type "redis") (not .Values.store.bundled.enabled) (not $r.url) (not $r.addrs) -}}
{{- fail "store.type redis with store.bundled.enabled false needs store.redis.url or store.redis.addrs" -}}
{{- end -}}
{{- if and $r.cluster (not $r.url) (not $r.addrs) -}}
{{- fail "store.redis.cluster needs the Cluster's nodes in store.redis.addrs (or url): the bundled store is one node" -}}
{{- end -}}
{{- if and $r.url $r.addrs -}}
{{- fail "store.redis: give url or addrs, not both" -}}
{{- end -}}
{{- if and .Values.state.enabled .Values.state.existingClaim $many -}}
{{- fail "state.existingClaim with more than one replica (replicaCount > 1 or autoscaling.enabled): the replicas would write one file. Leave state.existingClaim empty (an emptyDir per pod), or run one replica" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" -}}
{{- end -}}
{{- if .Values.gateway.enabled -}}
{{- include "podpin.validateGateway" . -}}
{{- end -}}
{{- end -}}

{{/* podpin.validateGateway fails the rendering when a Service port of
gateway.ports is taken, or, rendered against a cluster, when the cluster
lacks the Gateway API CRDs the controller reads. */}}
{{- define "podpin.validateGateway" -}}
{{- $taken := dict (toString .Values.service.port) "service.port (the Ingress listener's Service port)" "8080" "the pods' Ingress listener" (toString .Values.admin.port) "admin.port" -}}
{{- if .Values.listener.tls.secretNames -}}
{{- $_ := set $taken (toString .Values.service.tlsPort) "service.tlsPort (the Ingress TLS listener's Service port)" -}}
{{- $_ := set $taken "8443" "the pods' Ingress TLS listener" -}}
{{- end -}}
{{- range $port := .Values.gateway.ports -}}
{{- with get $taken (toString $port) -}}
{{- fail (printf "gateway.ports: %v is taken by %s; leave it out of gateway.ports, or move the other (for example --set service.port=8080)" $port .) -}}
{{- end -}}
{{- end -}}
{{- if and (include "podpin.online" .) (not (.Capabilities.APIVersions.Has "gateway.networking.k8s.io/v1/GatewayClass")) -}}
{{- fail "gateway.enabled: the cluster has no Gateway API CRDs (gateway.networking.k8s.io/v1 GatewayClass). Install them first: helm show crds deploy/helm/podpin | kubectl apply --server-side -f - (or set gateway.installCRDs=true on the first helm install: helm upgrade never installs CRDs)" -}}
{{- end -}}
{{- end -}}

{{/* podpin.listenerEdge is what both client listeners take from
listener: trusted proxies and the PROXY protocol. */}}
{{- define "podpin.listenerEdge" -}}
{{- with .Values.listener.trustedProxies }}
trustedProxies:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.listener.proxyProtocol }}
proxyProtocol: true
{{- with .Values.listener.proxyProtocolSources }}
proxyProtocolSources:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* podpin.config is podpin's configuration file but its routes: what
takes effect at start, and so what the pods' checksum/config covers. */}}
{{- define "podpin.config" -}}
listeners:
  - address: ":8080"
    {{- with include "podpin.listenerEdge" . }}
    {{- . | trim | nindent 4 }}
    {{- end }}
  {{- with .Values.listener.tls.secretNames }}
  - address: ":8443"
    {{- with include "podpin.listenerEdge" $ }}
    {{- . | trim | nindent 4 }}
    {{- end }}
    tls:
      minVersion: {{ $.Values.listener.tls.minVersion | quote }}
      certificates:
        {{- range $i, $name := . }}
        - certFile: /etc/podpin/tls/{{ $i }}/tls.crt
          keyFile: /etc/podpin/tls/{{ $i }}/tls.key
        {{- end }}
  {{- end }}
admin:
  address: ":{{ .Values.admin.port }}"
  tokenFile: /etc/podpin/admin/token
  {{- if .Values.admin.readToken.secretName }}
  readTokenFile: /etc/podpin/admin-read/token
  {{- end }}
  metrics: {{ .Values.admin.metrics }}
log:
  format: {{ .Values.logFormat }}
podHeader: {{ .Values.podHeader | quote }}
{{- $limits := deepCopy .Values.limits }}
{{- with .Values.tableEntries }}
{{- $_ := set $limits "tableEntries" (int64 .) }}
{{- end }}
{{- if .Values.newSessions.perIP }}
{{- $_ := set $limits "newSessionsPerIP" .Values.newSessions.perIP }}
{{- with .Values.newSessions.burst }}
{{- $_ := set $limits "newSessionsBurst" (int64 .) }}
{{- end }}
{{- end }}
{{- with $limits }}
limits:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.upstream }}
upstream:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.keySecret.secretName }}
keySecret:
  env: PODPIN_KEY_SECRET
{{- end }}
shutdown:
  delay: {{ .Values.shutdown.delay }}
  drainTimeout: {{ .Values.shutdown.drainTimeout }}
{{- if .Values.state.enabled }}
state:
  file: /var/lib/podpin/tables.snapshot
  interval: {{ .Values.state.interval }}
{{- end }}
store:
  type: {{ .Values.store.type }}
  {{- if eq .Values.store.type "redis" }}
  {{- $r := .Values.store.redis }}
  redis:
    {{- if include "podpin.bundledStore" . }}
    url: {{ printf "redis://%s.%s.svc:6379" (include "podpin.storeName" .) .Release.Namespace | quote }}
    {{- end }}
    {{- with $r.url }}
    url: {{ . | quote }}
    {{- end }}
    {{- with $r.addrs }}
    addrs:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $r.masterName }}
    masterName: {{ . | quote }}
    {{- end }}
    {{- if $r.cluster }}
    cluster: true
    {{- end }}
    {{- with $r.username }}
    username: {{ . | quote }}
    {{- end }}
    {{- with $r.db }}
    db: {{ . }}
    {{- end }}
    {{- if $r.tls.enabled }}
    tls: true
    {{- end }}
    {{- if $r.tls.caSecret.name }}
    tlsCAFile: /etc/podpin/redis-ca/{{ $r.tls.caSecret.key }}
    {{- end }}
    {{- with $r.tls.serverName }}
    tlsServerName: {{ . | quote }}
    {{- end }}
    keyPrefix: {{ $r.keyPrefix | quote }}
    {{- with $r.timeout }}
    timeout: {{ . }}
    {{- end }}
    {{- if $r.passwordSecret.name }}
    passwordEnv: REDIS_PASSWORD
    {{- end }}
  {{- end }}
{{- end -}}

{{/* podpin.adminToken is the token of the admin Secret the chart renders,
or empty when it renders none: admin.token.value; else, when
admin.token.generate and the chart is rendered against a cluster, the token
of the Secret this release made before (it carries the release's labels),
so an upgrade keeps it, or a new random one. A Secret of that name without
those labels is the user's and is left alone. Worked out once per rendering, so the Secret and the pods'
checksum agree. */}}
{{- define "podpin.adminToken" -}}
{{- $t := .Values.admin.token -}}
{{- if not (hasKey $t "resolved") -}}
{{- $token := $t.value -}}
{{- if and (not $token) $t.generate (include "podpin.online" .) -}}
{{- $old := lookup "v1" "Secret" .Release.Namespace $t.secretName -}}
{{- if not $old -}}
{{- $token = randAlphaNum 48 -}}
{{- else if and (eq (dig "metadata" "labels" "app.kubernetes.io/instance" "" $old) .Release.Name) (eq (dig "metadata" "labels" "app.kubernetes.io/name" "" $old) .Chart.Name) -}}
{{- $token = dig "data" "token" "" $old | b64dec -}}
{{- end -}}
{{- end -}}
{{- $_ := set $t "resolved" $token -}}
{{- end -}}
{{- $t.resolved -}}
{{- end -}}

{{/* podpin.adminTokenChecksum changes when the admin token does. */}}
{{- define "podpin.adminTokenChecksum" -}}
{{- with include "podpin.adminToken" . -}}
{{- sha256sum . -}}
{{- else -}}
{{- include "podpin.secretChecksum" (dict "root" . "name" .Values.admin.token.secretName) -}}
{{- end -}}
{{- end -}}
