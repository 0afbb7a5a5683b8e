"""The Kubernetes controller: kopf handlers, builders of child objects, statuses and events."""
