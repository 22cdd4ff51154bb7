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

{{- define "qwenflow.port" -}}
{{- if eq .Values.engine "vllm" -}}8000{{- else -}}{{ .Values.containerPort }}{{- end -}}
{{- end -}}

{{- define "qwenflow.servedName" -}}
{{- if .Values.model.servedName -}}{{ .Values.model.servedName }}
{{- else if eq .Values.model.source "registry" -}}{{ regexReplaceAll "[/@].*$" (trimPrefix "models:/" .Values.model.uri) "" }}
{{- else -}}{{ base (include "qwenflow.modelPath" .) }}{{- end -}}
{{- end -}}

{{- /* vLLM loads the directory the init container fetched and verified (registry) or the PVC copy it checked. */ -}}
{{- define "qwenflow.vllmModelDir" -}}
{{- if eq .Values.model.source "pvc" -}}{{ include "qwenflow.modelPath" . }}{{- else -}}/var/cache/qwenflow/model{{- end -}}
{{- end -}}

{{- /* vLLM's documented `vllm serve` flags; tensor parallelism is the pod's GPU count. */ -}}
{{- define "qwenflow.vllmArgs" -}}
{{- $x := .Values.vllm -}}
- {{ include "qwenflow.vllmModelDir" . | quote }}
- --served-model-name={{ include "qwenflow.servedName" . }}
- --host=0.0.0.0
- --port=8000
- --tensor-parallel-size={{ .Values.gpu.count }}
- --max-model-len={{ $x.maxModelLen }}
- --gpu-memory-utilization={{ $x.gpuMemoryUtilization }}
{{- with $x.hfOverrides }}
- --hf-overrides={{ toJson . }}
{{- end }}
{{- if $x.dualChunkAttention }}
- --enforce-eager
- --enable-chunked-prefill
{{- end }}
{{- if gt (int $x.maxNumBatchedTokens) 0 }}
- --max-num-batched-tokens={{ $x.maxNumBatchedTokens }}
{{- end }}
{{- range $x.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "qwenflow.mlflowEnv" -}}
{{- if eq .Values.model.source "registry" }}
- {name: MLFLOW_TRACKING_URI, value: {{ required "model.mlflow.trackingUri is required for model.source=registry" .Values.model.mlflow.trackingUri | quote }}}
{{- end }}
{{- end -}}

{{- define "qwenflow.mlflowEnvFrom" -}}
{{- if and (eq .Values.model.source "registry") .Values.model.mlflow.credentialsSecret }}
envFrom:
  - secretRef: {name: {{ .Values.model.mlflow.credentialsSecret | quote }}}
{{- end }}
{{- end -}}
