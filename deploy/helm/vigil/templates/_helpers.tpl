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

{{/* The admission webhook's TLS Secret (tls.crt, tls.key, ca.crt). */}}
{{- define "vigil.admissionTlsSecret" -}}
{{ default "vigil-admission-tls" .Values.securedCluster.admission.tls.secretName }}
{{- end -}}

{{/* Namespaces whose requests never reach the webhook: Kubernetes' own and the ones Vigil runs in, so
     neither a slow webhook nor a policy can keep the control plane or Vigil itself from starting pods.
     The release's namespace is not among them: the chart puts no pod there, and it is often "default". */}}
{{- define "vigil.admissionExempt" -}}
{{- $names := list "kube-system" "kube-public" "kube-node-lease" .Values.namespaces.main -}}
{{- if .Values.securedCluster.sensor.enabled }}{{ $names = append $names .Values.namespaces.sensor }}{{ end -}}
{{ toJson (uniq $names) }}
{{- end -}}

{{/* cert-manager's CA injection, in mode certManager. */}}
{{- define "vigil.admissionInjectCA" -}}
{{- if eq .Values.securedCluster.admission.tls.mode "certManager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/vigil-admission" .Values.namespaces.main }}
{{- end -}}
{{- end -}}

{{/* What every webhook of the chart shares: the Service, the time-out, the exempt namespaces. */}}
{{- define "vigil.admissionWebhook" -}}
{{- $a := .root.Values.securedCluster.admission -}}
sideEffects: None
admissionReviewVersions: ["v1"]
matchPolicy: Equivalent
timeoutSeconds: {{ $a.timeoutSeconds }}
namespaceSelector:
  {{- with .matchLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "vigil.admissionExempt" .root }}
clientConfig:
  service:
    name: vigil-admission
    namespace: {{ .root.Values.namespaces.main }}
    path: {{ .path }}
    port: 443
  {{- if .caBundle }}
  caBundle: {{ .caBundle }}
  {{- end }}
{{- end -}}

{{/* Pods (and ephemeral containers added to them) and the pod templates of the workload kinds. */}}
{{- define "vigil.admissionRules" -}}
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["pods", "pods/ephemeralcontainers"]
  scope: Namespaced
- apiGroups: ["apps"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["deployments", "replicasets", "statefulsets", "daemonsets"]
  scope: Namespaced
- apiGroups: ["batch"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["jobs", "cronjobs"]
  scope: Namespaced
{{- end -}}

{{/* mode generate: the webhook's Secret data and annotations (JSON; P-256 keys) from the Secret an earlier release made
     (old: {} when there is none) at time now (Unix seconds). The CA is kept while rotation is unchanged and
     it has more than 30 days left, so caBundle stays; the certificate is kept while it has more than 30
     days left and otherwise issued anew from the same CA. caBundle (base64 PEM) is the CA; when a new CA
     replaces one that is due or unusable, the old CA's certificate follows it in caBundle until the next
     upgrade, so the pods still serving from it are trusted while the rollout replaces them. A new
     rotation value is the operator retiring the old CA (perhaps compromised): it is not trusted again. */}}
{{- define "vigil.admissionGeneratedTls" -}}
{{- $day := 86400 -}}
{{- $now := .now | int64 -}}
{{- $data := dig "data" (dict) .old -}}
{{- $was := dig "metadata" "annotations" (dict) .old -}}
{{- $complete := and (hasKey $data "ca.crt") (hasKey $data "ca.key") (hasKey $data "tls.crt") (hasKey $data "tls.key") -}}
{{- $caRenewAfter := get $was "vigil.dev/ca-renew-after" | default "0" | int64 -}}
{{- $renewAfter := get $was "vigil.dev/renew-after" | default "0" | int64 -}}
{{- $tls := dict -}}
{{- $bundle := "" -}}
{{- $annotations := dict "vigil.dev/rotation" .rotation -}}
{{- if and $complete (eq (get $was "vigil.dev/rotation") .rotation) (lt $now $caRenewAfter) -}}
{{- $_ := set $annotations "vigil.dev/ca-renew-after" (toString $caRenewAfter) -}}
{{- if lt $now $renewAfter -}}
{{- $tls = pick $data "ca.crt" "ca.key" "tls.crt" "tls.key" -}}
{{- $_ := set $annotations "vigil.dev/renew-after" (toString $renewAfter) -}}
{{- else -}}
{{- $ca := buildCustomCert (get $data "ca.crt") (get $data "ca.key") -}}
{{- $cert := genSignedCertWithKey .host nil .dnsNames 365 $ca (genPrivateKey "ecdsa") -}}
{{- $tls = dict "ca.crt" (get $data "ca.crt") "ca.key" (get $data "ca.key") "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) -}}
{{- $_ := set $annotations "vigil.dev/renew-after" (toString (add $now (mul 335 $day))) -}}
{{- end -}}
{{- else -}}
{{- $ca := genCAWithKey "vigil-admission-ca" 3650 (genPrivateKey "ecdsa") -}}
{{- $cert := genSignedCertWithKey .host nil .dnsNames 365 $ca (genPrivateKey "ecdsa") -}}
{{- $tls = dict "ca.crt" ($ca.Cert | b64enc) "ca.key" ($ca.Key | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) -}}
{{- $_ := set $annotations "vigil.dev/renew-after" (toString (add $now (mul 335 $day))) -}}
{{- $_ := set $annotations "vigil.dev/ca-renew-after" (toString (add $now (mul 3620 $day))) -}}
{{- $previous := b64dec (get $data "ca.crt" | default "") | trim -}}
{{- if and (eq (get $was "vigil.dev/rotation") .rotation) (hasPrefix "-----BEGIN CERTIFICATE-----" $previous) -}}
{{- $bundle = printf "%s\n%s\n" (trim $ca.Cert) $previous | b64enc -}}
{{- end -}}
{{- end -}}
{{ toJson (dict "data" $tls "annotations" $annotations "caBundle" ($bundle | default (get $tls "ca.crt"))) }}
{{- end -}}
