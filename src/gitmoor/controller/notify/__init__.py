"""Notifications to webhooks when a sync succeeds or fails, or an app turns Degraded.

Configured like Argo CD's notifications (triggers, templates, services in the
``argocd-notifications-cm`` ConfigMap), kept to what most teams use: webhooks
(a generic JSON POST, or Slack's incoming webhook), the triggers each wants and
one message template per trigger, in the ConfigMap ``gitmoor-notifications``.

One job per module::

    config    parse and validate config.yaml (errors name the field, never the value)
    template  Notification, the safe placeholder expansion, the JSON body per format
    delivery  Notifier: a lane per webhook, retries with backoff (go-retryablehttp's
              policy, as Flux's notification-controller), URLs and headers kept out of logs

``config`` and ``template`` are pure (no I/O, no Kubernetes client); only
``delivery`` sends anything or reads the ConfigMap.
"""

from gitmoor.controller.notify.config import (
    CONFIG_KEY,
    CONFIGMAP,
    DEFAULT_TEMPLATES,
    HEALTH_DEGRADED,
    SYNC_FAILED,
    SYNC_SUCCEEDED,
    TRIGGERS,
    NotifyConfig,
    Webhook,
    parse_config,
)
from gitmoor.controller.notify.delivery import Notifier
from gitmoor.controller.notify.template import Notification, body_for, render

__all__ = [
    "CONFIGMAP",
    "CONFIG_KEY",
    "DEFAULT_TEMPLATES",
    "HEALTH_DEGRADED",
    "SYNC_FAILED",
    "SYNC_SUCCEEDED",
    "TRIGGERS",
    "Notification",
    "Notifier",
    "NotifyConfig",
    "Webhook",
    "body_for",
    "parse_config",
    "render",
]
