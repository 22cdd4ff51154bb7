{{- define "qwenflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "qwenflow.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "qwenflow.labels" -}}
{{ include "qwenflow.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "qwenflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "qwenflow.fullname" .) .Values.serviceAccount.name }}
{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{- define "qwenflow.modelPath" -}}
{{- if eq .Values.model.source "registry" -}}{{ .Values.model.uri }}
{{- else if eq .Values.model.source "pvc" -}}{{ printf "/models/%s" (.Values.model.pvc.path | trimPrefix "/") | trimSuffix "/" }}
{{- else -}}{{- end -}}
{{- end -}}
