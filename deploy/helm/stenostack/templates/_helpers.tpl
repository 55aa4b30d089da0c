{{/* Names, labels and shared pieces. */}}

{{- define "stenostack.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stenostack.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "stenostack.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stenostack.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "stenostack.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "stenostack.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The router discovers exactly these pods: this release's engines. */}}
{{- define "stenostack.engineDiscoverySelector" -}}
app.kubernetes.io/name={{ include "stenostack.name" . }},app.kubernetes.io/instance={{ .Release.Name }},app.kubernetes.io/component=engine
{{- end -}}

{{- define "stenostack.routerFullname" -}}
{{- printf "%s-router" (include "stenostack.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* (dict "root" $ "engine" $e) */}}
{{- define "stenostack.engineFullname" -}}
{{- printf "%s-engine-%s" (include "stenostack.fullname" .root) .engine.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stenostack.engineSecretName" -}}
{{- default (printf "%s-engine-auth" (include "stenostack.fullname" .)) .Values.engineAuth.existingSecret -}}
{{- end -}}

{{- define "stenostack.routerSecretName" -}}
{{- default (printf "%s-config" (include "stenostack.routerFullname" .)) .Values.router.auth.existingSecret -}}
{{- end -}}

{{/*
Merge map .src into map .dst in place, recursively; any other value (lists included)
replaces. Unlike mergeOverwrite, false, 0 and "" in .src win too.
*/}}
{{- define "stenostack.mergeInto" -}}
{{- $dst := .dst -}}
{{- range $key, $value := .src -}}
{{- $current := get $dst $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- include "stenostack.mergeInto" (dict "dst" $current "src" $value) -}}
{{- else -}}
{{- $_ := set $dst $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The names an engine serves its models under, as a JSON list. (dict "engine" $e) */}}
{{- define "stenostack.engineModelNames" -}}
{{- $names := list -}}
{{- range .engine.models -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* Every model some engine of the release serves, as a JSON list: the router holds their
requests while no engine is up (--cold-start-model). */}}
{{- define "stenostack.servedModels" -}}
{{- $names := list -}}
{{- range $engine := .Values.engines -}}
{{- $e := deepCopy $.Values.engineDefaults -}}
{{- include "stenostack.mergeInto" (dict "dst" $e "src" $engine) -}}
{{- $names = concat $names (include "stenostack.engineModelNames" (dict "engine" $e) | fromJsonArray) -}}
{{- end -}}
{{- toJson ($names | uniq) -}}
{{- end -}}

{{/* (dict "root" $ "variant" "cpu") */}}
{{- define "stenostack.image" -}}
{{- $image := .root.Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default (printf "%s-%s" .root.Chart.AppVersion .variant) $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The container security context every container gets (the image's user, uid 10001). */}}
{{- define "stenostack.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* (dict "root" $ "engine" $e): does this engine need the model volume? */}}
{{- define "stenostack.engineUsesVolume" -}}
{{- range .engine.models -}}
{{- if ne .source "bundled" -}}yes{{- end -}}
{{- end -}}
{{- end -}}

{{- define "stenostack.engineHasHub" -}}
{{- range .engine.models -}}
{{- if eq .source "hub" -}}yes{{- end -}}
{{- end -}}
{{- end -}}

{{- define "stenostack.engineClaimName" -}}
{{- $volume := .engine.modelVolume -}}
{{- if $volume.existingClaim -}}
{{- $volume.existingClaim -}}
{{- else -}}
{{- printf "%s-models-%s" (include "stenostack.fullname" .root) .engine.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stenostack.terminationGracePeriod" -}}
{{- add (int .Values.drain.noticeSeconds) (int .Values.drain.timeoutSeconds) (int .Values.drain.marginSeconds) -}}
{{- end -}}

{{/* (dict "root" $ "engine" $e): the `stenostack serve` arguments. */}}
{{- define "stenostack.engineArgs" -}}
{{- $e := .engine -}}
- serve
- --host=0.0.0.0
- --port=8000
{{- range $e.models }}
{{- if eq .source "bundled" }}
- --model={{ .name }}={{ default .name .bundledName }}
{{- else }}
- --model={{ .name }}=/models/{{ .path }}
{{- end }}
{{- end }}
- --device={{ $e.device }}
- --compute-type={{ $e.computeType }}
- --cpu-threads={{ int64 $e.cpuThreads }}
{{- if gt (int $e.beamSize) 0 }}
- --beam-size={{ int $e.beamSize }}
{{- end }}
- --batch-gather-ms={{ $e.batch.gatherMs }}
- --max-queued-audio-seconds={{ $e.limits.maxQueuedAudioSeconds }}
- --max-audio-seconds={{ $e.limits.maxAudioSeconds }}
- --max-upload-mb={{ $e.limits.maxUploadMb }}
- --realtime-max-sessions={{ int64 $e.realtime.maxSessions }}
- --realtime-idle-timeout-s={{ $e.realtime.idleTimeoutSeconds }}
- --realtime-max-message-bytes={{ int64 $e.realtime.maxMessageBytes }}
- --realtime-max-pending-event-bytes={{ int64 $e.realtime.maxPendingEventBytes }}
- --drain-notice-s={{ .root.Values.drain.noticeSeconds }}
- --drain-timeout-s={{ .root.Values.drain.timeoutSeconds }}
- --log-level={{ $e.logLevel }}
{{- if .root.Values.engineAuth.enabled }}
- --api-key-file=/etc/stenostack/engine-auth/backend-api-key
{{- end }}
{{- range $e.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Spread pods of one component over nodes and zones. (dict "root" $ "spread" $s "labels" $l) */}}
{{- define "stenostack.topologySpread" -}}
{{- if .spread.enabled -}}
topologySpreadConstraints:
  {{- range list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
  - maxSkew: 1
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $.spread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- toYaml $.labels | nindent 8 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Pods roll when an explicitly set engine key changes (a random one is never hashed). */}}
{{- define "stenostack.authChecksum" -}}
{{- if and .Values.engineAuth.enabled .Values.engineAuth.backendApiKey (not .Values.engineAuth.existingSecret) }}
checksum/engine-auth: {{ .Values.engineAuth.backendApiKey | sha256sum }}
{{- end }}
{{- end -}}
