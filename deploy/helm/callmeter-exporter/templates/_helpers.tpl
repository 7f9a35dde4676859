{{/* Chart name, trimmed to the 63 characters a label value allows. */}}
{{- define "callmeter-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. A release named like the chart is not
repeated ("callmeter-exporter", not "callmeter-exporter-callmeter-exporter").
*/}}
{{- define "callmeter-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "callmeter-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "callmeter-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "callmeter-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "callmeter-exporter.labels" -}}
helm.sh/chart: {{ include "callmeter-exporter.chart" . }}
{{ include "callmeter-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: callmeter-exporter
{{- end }}

{{- define "callmeter-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "callmeter-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "callmeter-exporter.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Secret holding the API key and the key in it; empty when no key is configured. */}}
{{- define "callmeter-exporter.apiKeySecretName" -}}
{{- if .Values.existingSecret.name }}
{{- .Values.existingSecret.name }}
{{- else if .Values.apiKey }}
{{- include "callmeter-exporter.fullname" . }}
{{- end }}
{{- end }}

{{- define "callmeter-exporter.apiKeySecretKey" -}}
{{- if .Values.existingSecret.name }}
{{- .Values.existingSecret.key }}
{{- else }}
{{- "api-key" }}
{{- end }}
{{- end }}

{{- define "callmeter-exporter.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "callmeter-exporter.fullname" .)) .Values.webConfig.existingSecret }}
{{- end }}

{{/* "true" when the pod keeps a state file; never in demo mode, whose simulator starts anew each time. */}}
{{- define "callmeter-exporter.stateEnabled" -}}
{{- if and .Values.state.enabled (not .Values.demo) }}true{{ end }}
{{- end }}

{{/* The claim holding the state: the user's, or the one the chart creates. */}}
{{- define "callmeter-exporter.stateClaimName" -}}
{{- default (printf "%s-state" (include "callmeter-exporter.fullname" .)) .Values.state.persistence.existingClaim }}
{{- end }}

{{/* Secret holding the webhook secrets, and the key in it. */}}
{{- define "callmeter-exporter.webhookSecretName" -}}
{{- default (printf "%s-webhooks" (include "callmeter-exporter.fullname" .)) .Values.webhooks.existingSecret.name }}
{{- end }}

{{- define "callmeter-exporter.webhookSecretKey" -}}
{{- if .Values.webhooks.existingSecret.name }}
{{- .Values.webhooks.existingSecret.key }}
{{- else }}
{{- "webhook-secrets" }}
{{- end }}
{{- end }}

{{/* "true" when the webhook receiver listens on a port of its own (else it shares the metrics port). */}}
{{- define "callmeter-exporter.webhookOwnPort" -}}
{{- if and .Values.webhooks.enabled (not (kindIs "invalid" .Values.webhooks.port)) }}true{{ end }}
{{- end }}

{{/* The Service port the receiver answers on: its own, or the metrics port. */}}
{{- define "callmeter-exporter.webhookServicePort" -}}
{{- if kindIs "invalid" .Values.webhooks.port }}http-metrics{{ else }}http-webhooks{{ end }}
{{- end }}
