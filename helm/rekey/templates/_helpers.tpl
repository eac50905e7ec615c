{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "rekey.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the prefix of every resource. Component suffixes stay within 63 characters. */}}
{{- define "rekey.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rekey.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "rekey.labels" -}}
helm.sh/chart: {{ include "rekey.chart" . }}
{{ include "rekey.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rekey
{{- end }}

{{- define "rekey.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rekey.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: (dict "root" $ "component" "worker"). */}}
{{- define "rekey.componentLabels" -}}
{{ include "rekey.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "rekey.componentSelectorLabels" -}}
{{ include "rekey.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "rekey.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rekey.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rekey.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Pods get the drain time plus a margin to close connections and flush logs. */}}
{{- define "rekey.terminationGracePeriodSeconds" -}}
{{- add .Values.drainTimeoutSeconds 10 }}
{{- end }}

{{/* rekey.yaml: `config` is a map, or a whole file given with `--set-file config=rekey.yaml`. */}}
{{- define "rekey.configYaml" -}}
{{- if kindIs "string" .Values.config }}
{{- .Values.config }}
{{- else }}
{{- toYaml .Values.config }}
{{- end }}
{{- end }}

{{/* Rolls worker and server pods when the configuration changes (apply already reloads it live). */}}
{{- define "rekey.configChecksum" -}}
{{- include "rekey.configYaml" . | sha256sum }}
{{- end }}

{{/*
Environment of every rekey container: each variable of src/settings.ts (ENVIRONMENT).
The credentials come from the existing Secret; the rest from values. Pass (dict "root" $ "port" N), and
"metricsPort" M to serve /metrics on its own port, and "migrate" true for the container that runs
`rekey migrate`: only it gets the owner role's URL.
*/}}
{{- define "rekey.env" -}}
{{- $root := .root }}
{{- $secret := required "credentials.existingSecret is required" $root.Values.credentials.existingSecret }}
{{- $keys := $root.Values.credentials.keys }}
{{- $redis := $root.Values.redis -}}
- name: DATABASE_URL
  valueFrom:
    {{- if $root.Values.database.existingSecret }}
    # The database's own Secret (CloudNativePG: <cluster>-app, whose uri names the <cluster>-rw Service).
    secretKeyRef: { name: {{ $root.Values.database.existingSecret | quote }}, key: {{ $root.Values.database.key | quote }} }
    {{- else }}
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.databaseUrl | quote }} }
    {{- end }}
{{- if .migrate }}
- name: REKEY_MIGRATE_DATABASE_URL
  valueFrom:
    # The owner role's URL: only `rekey migrate` holds it; without it, one role migrates and runs rekey.
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.migrateDatabaseUrl | quote }}, optional: true }
{{- end }}
- name: REDIS_URL
{{- if eq $redis.mode "secret" }}
  valueFrom:
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.redisUrl | quote }} }
{{- else }}
  # The topology only; the passwords come from REDIS_PASSWORD and REDIS_SENTINEL_PASSWORD.
  value: {{ include "rekey.redisUrl" $root | quote }}
{{- end }}
- name: REDIS_PASSWORD
  valueFrom:
    {{- if $redis.passwordSecret.name }}
    secretKeyRef: { name: {{ $redis.passwordSecret.name | quote }}, key: {{ $redis.passwordSecret.key | quote }} }
    {{- else }}
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.redisPassword | quote }}, optional: true }
    {{- end }}
- name: REDIS_SENTINEL_PASSWORD
  valueFrom:
    {{- if $redis.sentinelPasswordSecret.name }}
    secretKeyRef: { name: {{ $redis.sentinelPasswordSecret.name | quote }}, key: {{ $redis.sentinelPasswordSecret.key | quote }} }
    {{- else }}
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.redisSentinelPassword | quote }}, optional: true }
    {{- end }}
- name: REKEY_FINGERPRINT_KEY
  valueFrom:
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.fingerprintKey | quote }} }
- name: REKEY_AUDIT_KEY
  valueFrom:
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.auditKey | quote }} }
- name: REKEY_AUDIT_ANCHOR_INTERVAL
  value: {{ $root.Values.audit.anchorInterval | quote }}
- name: REKEY_AUDIT_ANCHOR_WEBHOOK
  valueFrom:
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.anchorWebhook | quote }}, optional: true }
- name: REKEY_LOCAL_STORE_KEY
  valueFrom:
    # Only the built-in local store needs it.
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.localStoreKey | quote }}, optional: true }
- name: REKEY_QUEUE_PREFIX
  value: {{ $root.Values.queuePrefix | quote }}
- name: REKEY_DRAIN_TIMEOUT
  value: {{ printf "%ds" (int $root.Values.drainTimeoutSeconds) | quote }}
- name: REKEY_DELIVERY_CACHE_MAX_AGE
  value: {{ $root.Values.deliveryCacheMaxAge | quote }}
- name: REKEY_JWKS_MAX_AGE
  value: {{ printf "%ds" (int $root.Values.jwksMaxAgeSeconds) | quote }}
- name: REKEY_TRUST_PROXY
  value: {{ include "rekey.trustProxy" $root | quote }}
- name: REKEY_DASHBOARD_COOKIE_SECURE
  value: {{ $root.Values.server.dashboard.secureCookie | quote }}
- name: LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
- name: PORT
  value: {{ .port | quote }}
- name: REKEY_METRICS_PORT
  # Empty: /metrics on PORT.
  value: {{ .metricsPort | default "" | toString | quote }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* REDIS_URL for redis.mode sentinel or cluster: the topology from values, no credentials. */}}
{{- define "rekey.redisUrl" -}}
{{- $redis := .Values.redis }}
{{- $scheme := ternary "rediss" "redis" $redis.tls }}
{{- if eq $redis.mode "sentinel" }}
{{- $hosts := required "redis.sentinel.hosts is required with redis.mode=sentinel" $redis.sentinel.hosts }}
{{- printf "%s+sentinel://%s/%s" $scheme (join "," $hosts) $redis.sentinel.masterName }}
{{- if $redis.db }}{{ printf "/%d" (int $redis.db) }}{{ end }}
{{- else }}
{{- $nodes := required "redis.cluster.nodes is required with redis.mode=cluster" $redis.cluster.nodes }}
{{- printf "%s+cluster://%s" $scheme (join "," $nodes) }}
{{- end }}
{{- end }}

{{/* Which proxies the server believes: the value given, else exactly the ingress hops when there is an ingress. */}}
{{- define "rekey.trustProxy" -}}
{{- if ne (toString .Values.trustProxy) "" -}}
{{- .Values.trustProxy -}}
{{- else if .Values.server.ingress.enabled -}}
{{- .Values.server.ingress.trustedHops -}}
{{- else -}}
false
{{- end -}}
{{- end }}

{{/* Pod-level settings shared by the worker, the server and the hook Job. */}}
{{- define "rekey.podCommon" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "rekey.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/* HTTP probes of a component: (dict "values" .Values.worker). */}}
{{- define "rekey.probes" -}}
livenessProbe:
  httpGet: { path: /healthz, port: http }
  {{- toYaml .values.livenessProbe | nindent 2 }}
readinessProbe:
  httpGet: { path: /readyz, port: http }
  {{- toYaml .values.readinessProbe | nindent 2 }}
{{- end }}

{{/* A PodDisruptionBudget spec's budget: minAvailable when set, else maxUnavailable. */}}
{{- define "rekey.pdbBudget" -}}
{{- if not (eq (toString .minAvailable) "") -}}
minAvailable: {{ .minAvailable }}
{{- else -}}
maxUnavailable: {{ .maxUnavailable }}
{{- end }}
{{- end }}
