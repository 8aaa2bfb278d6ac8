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

{{- define "textclf.monitorImage" -}}
{{ .Values.image.registry }}/textclf-monitor:{{ .Values.image.tag }}
{{- end }}
