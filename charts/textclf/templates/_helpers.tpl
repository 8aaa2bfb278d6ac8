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

{{/* The port the predictor's Service sends traffic to. With a request logger (the monitor), KServe points the
Service at its agent sidecar on 9081, which logs each request and forwards it to the model server on 8080
(kserve pkg/controller/v1beta1/inferenceservice/reconcilers/service/service_reconciler.go, createDefaultSvc). */}}
{{- define "textclf.predictorServedPort" -}}
{{- if .Values.monitor.enabled }}9081{{ else }}8080{{ end }}
{{- end }}

{{/* The predictor pods' Prometheus scrape annotations for the keda autoscaler: the model server's /metrics on
8080, and KServe's own scraping switch off, since it would point prometheus.io/port at Knative's queue-proxy
(9091), which Standard mode's pods lack (kserve pkg/webhook/admission/pod/metrics_aggregate_injector.go). */}}
{{- define "textclf.predictorScrapeAnnotations" -}}
serving.kserve.io/enable-prometheus-scraping: "false"
prometheus.io/scrape: "true"
prometheus.io/port: "8080"
prometheus.io/path: /metrics
{{- end }}

{{/* The chart's PostgreSQL (postgresql.enabled): its Service and the SQLAlchemy URL of one of its databases,
without the password: libpq reads PGPASSWORD, which each client's pod takes from postgresql.auth.secretName. */}}
{{- define "textclf.postgresqlHost" -}}
textclf-postgresql.{{ .Release.Namespace }}.svc.cluster.local
{{- end }}

{{- define "textclf.postgresqlUrl" -}}
postgresql+psycopg2://{{ .root.Values.postgresql.user }}@{{ include "textclf.postgresqlHost" .root }}:5432/{{ .database }}
{{- end }}

{{- define "textclf.postgresqlPasswordEnv" -}}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgresql.auth.secretName }}
      key: password
{{- end }}
