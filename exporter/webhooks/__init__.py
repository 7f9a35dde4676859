"""The webhook receiver: CallMeter's probe.status_changed deliveries as a verified fast path beside the poller."""

from .memory import DeliveryOrder, NudgeGate, ReplayMemory
from .metrics import RESULTS, WebhookMetrics
from .overlay import StatusOverlay
from .payload import PROBE_EVENT
from .push import ProbePush
from .receiver import MAX_BODY_BYTES, Answer, Receiver, StatusSink
from .secrets import WebhookSecrets
from .verify import sign

__all__ = ["MAX_BODY_BYTES", "PROBE_EVENT", "RESULTS", "Answer", "DeliveryOrder", "NudgeGate", "ProbePush", "Receiver",
           "ReplayMemory", "StatusOverlay", "StatusSink", "WebhookMetrics", "WebhookSecrets", "sign"]
