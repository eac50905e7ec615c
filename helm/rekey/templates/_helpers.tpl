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
The credentials come from the existing Secret; the rest from values. Pass (dict "root" $ "port" N).
*/}}
{{- define "rekey.env" -}}
{{- $root := .root }}
{{- $secret := required "credentials.existingSecret is required" $root.Values.credentials.existingSecret }}
{{- $keys := $root.Values.credentials.keys -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.databaseUrl | quote }} }
- name: REDIS_URL
  valueFrom:
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.redisUrl | quote }} }
- name: REKEY_FINGERPRINT_KEY
  valueFrom:
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.fingerprintKey | quote }} }
- name: REKEY_LOCAL_STORE_KEY
  valueFrom:
    # Only the built-in local store needs it.
    secretKeyRef: { name: {{ $secret | quote }}, key: {{ $keys.localStoreKey | quote }}, optional: true }
- name: REKEY_QUEUE_PREFIX
  value: {{ $root.Values.queuePrefix | quote }}
- name: REKEY_DRAIN_TIMEOUT
  value: {{ printf "%ds" (int $root.Values.drainTimeoutSeconds) | quote }}
- name: REKEY_TRUST_PROXY
  value: {{ $root.Values.trustProxy | toString | quote }}
- name: LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
- name: PORT
  value: {{ .port | quote }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
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
