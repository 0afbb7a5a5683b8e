{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, or nameOverride; at most 63 characters (a label value). */}}
{{- define "genesys-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: fullnameOverride, else "<release>-<name>", else the release name
alone when it already contains the chart name.
*/}}
{{- define "genesys-operator.fullname" -}}
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

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "genesys-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels that select the operator pod; they never change across upgrades. */}}
{{- define "genesys-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "genesys-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The standard labels of every object of the release. */}}
{{- define "genesys-operator.labels" -}}
helm.sh/chart: {{ include "genesys-operator.chart" . }}
{{ include "genesys-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: genesys-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "genesys-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "genesys-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "genesys-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The kopf peering name: peering.name, else the full name. */}}
{{- define "genesys-operator.peeringName" -}}
{{- default (include "genesys-operator.fullname" .) .Values.peering.name }}
{{- end }}

{{/*
Checks of values that the schema cannot express; each failure names the value and why.
*/}}
{{- define "genesys-operator.validate" -}}
{{- if gt (int .Values.replicas) 1 }}
{{- fail (printf "replicas: %v is more than 1. Standalone, two operators would act on the same runs at once; with peering, kopf pauses every operator that sees another of the same priority, and all replicas of `genesys operator` have the same one, so all would stop. Use replicas: 1 (with peering.enabled for rolling upgrades)" .Values.replicas) }}
{{- end }}
{{- end }}
