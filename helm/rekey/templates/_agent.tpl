{{/*
`rekey agent` as a sidecar (docs/delivery.md). Two named templates a pod spec includes, here for
`agent.workloads` (agent-workloads.yaml) and for charts that depend on this one:

  containers:
    - name: app
      ...
      volumeMounts: [{ name: rekey-agent, mountPath: /run/rekey, readOnly: true }]
    {{- include "rekey.agent.container" (dict "root" $ "agent" $agent) | nindent 4 }}
  volumes:
    {{- include "rekey.agent.volumes" (dict "root" $ "agent" $agent) | nindent 4 }}

`agent` is `.Values.agent` merged with the workload's own `secrets`, `audiences` (and overrides).
The agent authenticates with a projected service account token (audience `agent.tokenAudience`,
the kubernetes-service-account authenticator's `audience`), refreshed by the kubelet and re-read
by the agent for every request. It serves on 127.0.0.1:`agent.port` only, to requests carrying
the per-host token it writes (0600) to /run/rekey/agent-token in the pod's shared emptyDir: the
app reads it from there (run the app as the same user, `podSecurityContext.runAsUser`).
*/}}
{{- define "rekey.agent.container" -}}
{{- $root := .root }}
{{- $agent := .agent }}
- name: rekey-agent
  image: {{ include "rekey.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  args:
    - agent
    - --server
    - {{ default (printf "http://%s-server.%s.svc:%v" (include "rekey.fullname" $root) $root.Release.Namespace $root.Values.server.service.port) $agent.server | quote }}
    - --token-file
    - /var/run/secrets/rekey/token
    - --request-token-file
    - /run/rekey/agent-token
    - --port
    - {{ $agent.port | quote }}
    {{- range $agent.secrets }}
    - --secret
    - {{ . | quote }}
    {{- end }}
    {{- range $agent.audiences }}
    - --audience
    - {{ . | quote }}
    {{- end }}
  resources:
    {{- toYaml $agent.resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: rekey-token
      mountPath: /var/run/secrets/rekey
      readOnly: true
    - name: rekey-agent
      mountPath: /run/rekey
{{- end }}

{{- define "rekey.agent.volumes" -}}
- name: rekey-token
  projected:
    sources:
      - serviceAccountToken:
          audience: {{ .agent.tokenAudience | quote }}
          expirationSeconds: {{ .agent.tokenExpirationSeconds }}
          path: token
- name: rekey-agent
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
