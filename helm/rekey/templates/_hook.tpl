{{/*
Annotations of the hook resources. They run before every install, upgrade and rollback:
the ConfigMap and ServiceAccount first (lower weight), then the Job that uses them.
*/}}
{{- define "rekey.hookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade,pre-rollback
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: {{ .root.Values.migrate.deletePolicy }}
{{- end }}

{{- define "rekey.hookServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- include "rekey.fullname" . }}-migrate
{{- else }}
{{- include "rekey.serviceAccountName" . }}
{{- end }}
{{- end }}
