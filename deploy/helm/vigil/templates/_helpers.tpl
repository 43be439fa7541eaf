{{/* Labels every object carries; "component" names the part. */}}
{{- define "vigil.labels" -}}
app.kubernetes.io/name: vigil
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: vigil
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/component: {{ .component }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "vigil.selector" -}}
app.kubernetes.io/name: vigil
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vigil.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* The service's base URL as secured clusters reach it. */}}
{{- define "vigil.serviceUrl" -}}
{{- if .Values.securedCluster.serviceUrl -}}
{{ .Values.securedCluster.serviceUrl }}
{{- else if .Values.central.enabled -}}
{{ ternary "https" "http" .Values.central.tls.enabled }}://vigil-service.{{ .Values.namespaces.main }}.svc:{{ .Values.central.service.port }}
{{- else -}}
{{ fail "securedCluster.serviceUrl is required when central.enabled is false" }}
{{- end -}}
{{- end -}}

{{- define "vigil.registrationSecret" -}}
{{ default "vigil-registration" .Values.securedCluster.existingSecret }}
{{- end -}}

{{/* The Pod Security "restricted" pod and container settings (service and controller). */}}
{{- define "vigil.restrictedPod" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "vigil.restrictedContainer" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
