"""The webhook receiver: CallMeter's probe.status_changed deliveries as a verified fast path beside the poller."""

from .memory import DeliveryOrder, NudgeGate, ReplayMemory
from .metrics import RESULTS, WebhookMetrics
from .payload import PROBE_EVENT
from .receiver import MAX_BODY_BYTES, Answer, Receiver, StatusSink
from .secrets import WebhookSecrets
from .verify import sign

__all__ = ["MAX_BODY_BYTES", "PROBE_EVENT", "RESULTS", "Answer", "DeliveryOrder", "NudgeGate", "Receiver",
           "ReplayMemory", "StatusSink", "WebhookMetrics", "WebhookSecrets", "sign"]
