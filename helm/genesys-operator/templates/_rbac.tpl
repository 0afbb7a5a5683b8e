{{/*
The operator's RBAC rules: the one place that lists them. Every verb comes from a call in
operator/genesys (controller/handlers.py, backends/kubernetes.py, backends/torchx_job.py) or from
kopf itself; no wildcard, and no Secret (agent pods get Secrets by reference, the operator never
reads one). docs/install.md explains each rule.

"genesys-operator.namespaceRules": the objects in the watched namespaces. Cluster-wide they go
into the ClusterRole; with watchNamespaces into a Role in each of those namespaces.
*/}}
{{- define "genesys-operator.namespaceRules" -}}
# DiscoveryRuns: kopf lists and watches them and patches its finalizer and annotations;
# the reconcile reads each run again under its lock (get).
- apiGroups: ["genesys.dev"]
  resources: ["discoveryruns"]
  verbs: ["get", "list", "watch", "patch"]
# The run's status, written in one patch per reconcile.
- apiGroups: ["genesys.dev"]
  resources: ["discoveryruns/status"]
  verbs: ["patch"]
# Designs mirror the run's archive: listed by the run's labels, created once, read and
# deleted when a stale one of an earlier run is in the way, deleted with the run.
- apiGroups: ["genesys.dev"]
  resources: ["designs"]
  verbs: ["get", "list", "create", "delete"]
# Design statuses (rung results, fitness, rank).
- apiGroups: ["genesys.dev"]
  resources: ["designs/status"]
  verbs: ["patch"]
# Agent, check and training Jobs: kopf watches the runs' Jobs (an ended Job triggers a
# reconcile); the backend lists them, creates them (training through the TorchX
# kubernetes_job scheduler), patches them (the ingested annotation, suspend and resume) and
# deletes them (a finished session's check Job, a deleted run's Jobs).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Training pods: listed by the run's labels to see which wait for a node (WaitingForCapacity).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# The check pod's Service, one per design session: created with the session, deleted when
# it ends; listed by the run's labels when the run is deleted.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "create", "delete"]
# The check pod's NetworkPolicy (ingress only from its agent, no egress): same life as the
# Service.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "create", "delete"]
# Events on runs and designs, posted by the operator and by kopf.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if and .Values.peering.enabled .Values.watchNamespaces }}
# kopf peering in each watched namespace (KopfPeering): watched for other operators,
# patched with this operator's keep-alive.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}

{{/*
"genesys-operator.clusterRules": cluster-scoped reads kopf needs in either mode (and, cluster-wide
with peering, the ClusterKopfPeering).
*/}}
{{- define "genesys-operator.clusterRules" -}}
# kopf lists and watches CRDs to find the served resources and notice new versions.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.watchNamespaces }}
# kopf lists and watches namespaces when it serves named ones (without: a warning, and no
# notice of a namespace created after the start).
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- else if .Values.peering.enabled }}
# kopf peering cluster-wide (ClusterKopfPeering): watched for other operators, patched with
# this operator's keep-alive.
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}
