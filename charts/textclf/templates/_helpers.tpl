{{/* Labels every resource of the chart carries. */}}
{{- define "textclf.labels" -}}
app.kubernetes.io/part-of: textclf
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* The monitor's in-cluster URL: where KServe's logger posts and pipeline steps fetch from. */}}
{{- define "textclf.monitorUrl" -}}
http://textclf-monitor.{{ .Release.Namespace }}.svc.cluster.local:8000
{{- end }}

{{/* Where KServe's agent posts request logs: the monitor's events port (POST /events only, no token). */}}
{{- define "textclf.monitorEventsUrl" -}}
http://textclf-monitor.{{ .Release.Namespace }}.svc.cluster.local:8001/events
{{- end }}

{{/* MLflow: the chart's own server unless mlflow.url names another one. */}}
{{- define "textclf.mlflowUrl" -}}
{{- if .Values.mlflow.url -}}
{{ .Values.mlflow.url }}
{{- else -}}
http://mlflow.{{ .Release.Namespace }}.svc.cluster.local:5000
{{- end }}
{{- end }}

{{- define "textclf.image" -}}
{{ .root.Values.image.registry }}/textclf-{{ .name }}:{{ .root.Values.image.tag }}
{{- end }}

{{/* Every pod runs as the images' non-root user under the runtime's default seccomp profile. */}}
{{- define "textclf.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "textclf.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}
