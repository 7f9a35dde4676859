"""The webhook receiver's core: signatures, secrets, replays, time windows, payloads, order, metrics, logs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from exporter.settings import SettingsError, load
from exporter.webhooks import (
    MAX_BODY_BYTES,
    RESULTS,
    NudgeGate,
    Receiver,
    ReplayMemory,
    WebhookMetrics,
    WebhookSecrets,
    sign,
)
from exporter.webhooks.memory import DeliveryOrder, Seen
from exporter.webhooks.verify import MAX_SIGNATURE_HEADER, Signature, check_signature, parse_time
from tests.support.paths import ROOT
from tests.support.webhooks import SECRET, Sink, delivery

OTHER = "whsec_" + "z9" * 20
NOW = 1_800_000_000.0


class Clock:
    def __init__(self, at: float = NOW) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


class Harness:
    def __init__(self, *, secrets: tuple[str, ...] = (SECRET,), tolerance: float = 300.0) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.changes = 0
        self.metrics = WebhookMetrics(self.registry, on_change=self._changed)
        self.sink = Sink()
        self.wall = Clock()
        self.secrets = tuple(s.encode() for s in secrets)
        self.receiver = Receiver(secrets=lambda: self.secrets, metrics=self.metrics, sink=self.sink,
                                 tolerance=tolerance, wall=self.wall, clock=self.wall)

    def _changed(self) -> None:
        self.changes += 1

    def post(self, payload: dict[str, Any] | bytes, *, secret: str = SECRET, signature: str | None = "sign",
             headers: dict[str, str] | None = None, method: str = "POST") -> tuple[int, str]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        if signature == "sign":
            sent["x-callmeter-signature"] = sign(body, secret)
        elif signature is not None:
            sent["x-callmeter-signature"] = signature
        answer = self.receiver.handle(method, sent, body)
        return answer.status, answer.result

    def count(self, result: str) -> float:
        value = self.registry.get_sample_value("callmeter_exporter_webhook_deliveries_total", {"result": result})
        assert value is not None
        return value


@pytest.fixture
def hook() -> Harness:
    return Harness()


# -- signatures ------------------------------------------------------------------------------------------

def test_a_signed_delivery_for_a_known_probe_is_applied_with_its_arrival_time(hook: Harness) -> None:
    assert hook.post(delivery()) == (200, "applied")
    assert hook.sink.pushed == [("proj_1", "probe_a", "UNHEALTHY", NOW)]
    assert hook.count("applied") == 1
    assert hook.registry.get_sample_value("callmeter_exporter_webhook_last_delivery_timestamp_seconds") == NOW


def test_bare_hex_and_a_list_of_signatures_are_accepted() -> None:
    body = json.dumps(delivery()).encode()
    hexdigest = sign(body, SECRET).removeprefix("sha256=")
    assert check_signature(body, hexdigest.upper(), [SECRET.encode()]) is Signature.VALID
    assert check_signature(body, f"sha256={'0' * 64}, sha256={hexdigest}", [SECRET.encode()]) is Signature.VALID


# Known answers, computed outside this code (`printf '%s' BODY | openssl dgst -sha256 -hmac KEY`): the tests
# above sign with the code's own `sign()`, so a signer and a verifier that agree with each other but not with
# HMAC-SHA256 under the configured secret (a key derived wrongly on both sides, say) would pass them.
RFC_4231_CASE_2 = (b"Jefe", b"what do ya want for nothing?",
                   "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
"""RFC 4231, test case 2: the HMAC-SHA256 standard's own vector."""
KNOWN_BODY = (b'{"event":"probe.status_changed","probe_id":"probe_a","project_id":"proj_1",'
              b'"previous_status":"HEALTHY","new_status":"UNHEALTHY","timestamp":1800000000}')
KNOWN_SIGNATURE = "e637e2c9d24d509f48d1315002ea81d55e9d15ff434952442a48bc78c2a97c6b"
"""HMAC-SHA256 of KNOWN_BODY under SECRET (whsec_ followed by k3 twenty times), by openssl."""


def test_sign_gives_the_known_answers() -> None:
    key, message, digest = RFC_4231_CASE_2
    assert sign(message, key) == f"sha256={digest}"
    assert sign(message, key.decode()) == f"sha256={digest}"
    assert sign(KNOWN_BODY, SECRET) == f"sha256={KNOWN_SIGNATURE}"


@pytest.mark.parametrize("header", [f"sha256={KNOWN_SIGNATURE}", KNOWN_SIGNATURE, KNOWN_SIGNATURE.upper(),
                                    f"SHA256={KNOWN_SIGNATURE}", f"sha256={'0' * 64}, {KNOWN_SIGNATURE}"])
def test_a_known_answer_signature_verifies_under_the_configured_secret(header: str) -> None:
    """The secret as configured (CALLMETER_WEBHOOK_SECRET, through WebhookSecrets), a signature from outside."""
    secrets = WebhookSecrets(value=SECRET)
    assert check_signature(KNOWN_BODY, header, secrets.current()) is Signature.VALID
    hook = Harness()
    hook.receiver = Receiver(secrets=secrets.current, metrics=hook.metrics, sink=hook.sink, wall=hook.wall,
                             clock=hook.wall)
    assert hook.post(KNOWN_BODY, signature=header) == (200, "applied")
    assert hook.sink.pushed == [("proj_1", "probe_a", "UNHEALTHY", NOW)]


def test_the_rfc_4231_vector_verifies_and_one_bit_off_does_not() -> None:
    key, message, digest = RFC_4231_CASE_2
    assert check_signature(message, f"sha256={digest}", [key]) is Signature.VALID
    assert check_signature(message, digest, [key]) is Signature.VALID
    flipped = f"{int(digest[0], 16) ^ 1:x}" + digest[1:]
    assert check_signature(message, f"sha256={flipped}", [key]) is Signature.BAD
    assert check_signature(message + b" ", f"sha256={digest}", [key]) is Signature.BAD
    assert check_signature(message, f"sha256={digest}", [b"Jeff"]) is Signature.BAD


def test_a_secret_file_verifies_the_known_answer(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text(f"{OTHER}\n{SECRET}\n")
    assert check_signature(KNOWN_BODY, KNOWN_SIGNATURE, WebhookSecrets(path=path).current()) is Signature.VALID


@pytest.mark.parametrize(("signature", "result"), [
    (None, "missing_signature"),
    ("", "missing_signature"),
    ("sha256=nothex", "malformed_signature"),
    ("md5=" + "0" * 32, "malformed_signature"),
    ("sha256=" + "ab" * 31, "malformed_signature"),  # too short
    ("sha256=" + "ab" * 32, "bad_signature"),
    ("x" * 5000, "malformed_signature"),
])
def test_missing_malformed_and_bad_signatures_get_401_and_change_nothing(hook: Harness, signature: str | None,
                                                                          result: str) -> None:
    assert hook.post(delivery(), signature=signature) == (401, result)
    assert hook.sink.pushed == []
    assert hook.count(result) == 1
    assert hook.registry.get_sample_value("callmeter_exporter_webhook_last_delivery_timestamp_seconds") is None


def test_a_body_signed_with_another_secret_or_altered_after_signing_is_refused(hook: Harness) -> None:
    assert hook.post(delivery(), secret=OTHER) == (401, "bad_signature")
    body = json.dumps(delivery()).encode()
    signature = sign(body, SECRET)
    tampered = body.replace(b"UNHEALTHY", b"HEALTHY")
    assert hook.post(tampered, signature=signature) == (401, "bad_signature")
    assert hook.sink.pushed == []


def test_any_of_several_secrets_verifies() -> None:
    hook = Harness(secrets=(OTHER, SECRET))
    assert hook.post(delivery("probe_a"), secret=SECRET) == (200, "applied")
    assert hook.post(delivery("probe_b"), secret=OTHER) == (200, "applied")


def test_a_custom_signature_header_is_read() -> None:
    hook = Harness()
    hook.receiver = Receiver(secrets=lambda: hook.secrets, metrics=hook.metrics, sink=hook.sink,
                             signature_header="X-Hub-Signature-256", wall=hook.wall, clock=hook.wall)
    body = json.dumps(delivery()).encode()
    assert hook.receiver.handle("POST", {"x-hub-signature-256": sign(body, SECRET)}, body).status == 200
    assert hook.receiver.handle("POST", {"x-callmeter-signature": sign(body, SECRET)}, body).status == 401


# -- methods, sizes, bodies ------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "PATCH"])
def test_anything_but_post_gets_405_allowing_post(hook: Harness, method: str) -> None:
    answer = hook.receiver.handle(method, {}, b"")
    assert (answer.status, answer.result, answer.allow) == (405, "method_not_allowed", "POST")


def test_a_body_over_one_mebibyte_gets_413_before_any_signature_check(hook: Harness) -> None:
    body = json.dumps(delivery(padding="x" * MAX_BODY_BYTES)).encode()
    assert hook.post(body) == (413, "too_large")
    assert hook.sink.pushed == []
    just_under = json.dumps(delivery(probe="probe_b"))[:-1] + ', "p": "' + "x" * 1000 + '"}'
    assert hook.post(just_under.encode()) == (200, "applied")


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b'"text"', b"{", b"\xff\xfe", b"[" * 100_000,
    json.dumps({"event": "probe.status_changed", "project_id": "proj_1"}).encode(),  # no probe
    json.dumps({"event": "probe.status_changed", "probe_id": "probe_a"}).encode(),  # no project
    json.dumps({"probe_id": "probe_a", "project_id": "proj_1"}).encode(),  # no event
    json.dumps(delivery(probe_id={"nested": 1})).encode(),
    json.dumps(delivery(new_status=42)).encode(),
    json.dumps(delivery(timestamp="yesterday")).encode(),
], ids=["text", "array", "string", "truncated", "binary", "deep", "no-probe", "no-project", "no-event",
        "object-id", "numeric-status", "bad-timestamp"])
def test_a_signed_body_that_is_not_a_delivery_gets_400(hook: Harness, body: bytes) -> None:
    assert hook.post(body) == (400, "bad_payload")
    assert hook.sink.pushed == []


def test_other_events_are_acknowledged_and_ignored(hook: Harness) -> None:
    assert hook.post({"event": "test_run.completed", "test_run_id": "r1"}) == (200, "ignored_event")
    assert hook.sink.pushed == []


@pytest.mark.parametrize("field", ["new_status", "status", "current_status"])
def test_the_new_status_is_read_from_any_of_its_likely_names(hook: Harness, field: str) -> None:
    payload = delivery(new=None)
    payload[field] = "degraded"
    assert hook.post(payload) == (200, "applied")
    assert hook.sink.pushed[-1][2] == "DEGRADED"


def test_without_a_readable_new_status_the_delivery_only_nudges(hook: Harness) -> None:
    assert hook.post(delivery(new=None)) == (200, "nudged")
    assert hook.post(delivery("probe_b", new="not a word!")) == (200, "nudged")
    assert [p[2] for p in hook.sink.pushed] == [None, None]


def test_unknown_probes_and_projects_are_reported_as_such(hook: Harness) -> None:
    assert hook.post(delivery("probe_new")) == (200, "unknown_probe")
    assert hook.post(delivery(project="proj_new")) == (200, "unknown_project")
    assert hook.sink.pushed == []


# -- replays, time, order --------------------------------------------------------------------------------

def test_a_replay_is_acknowledged_and_changes_nothing(hook: Harness) -> None:
    first = json.dumps(delivery(new="UNHEALTHY", previous="HEALTHY")).encode()
    assert hook.post(first) == (200, "applied")
    assert hook.post(delivery(new="HEALTHY", previous="UNHEALTHY")) == (200, "applied")
    hook.wall.at += 60
    assert hook.post(first) == (200, "replayed")
    assert [p[2] for p in hook.sink.pushed] == ["UNHEALTHY", "HEALTHY"]
    assert hook.count("replayed") == 1


@pytest.mark.parametrize("where", ["header", "body-seconds", "body-milliseconds", "body-iso"])
def test_a_delivery_outside_the_tolerance_window_is_refused(hook: Harness, where: str) -> None:
    old = NOW - 301
    headers: dict[str, str] = {}
    payload = delivery()
    if where == "header":
        headers["X-CallMeter-Timestamp"] = str(int(old))
    elif where == "body-seconds":
        payload["timestamp"] = old
    elif where == "body-milliseconds":
        payload["occurred_at"] = int(old * 1000)
    else:
        payload["sent_at"] = "2027-01-15T07:54:59Z"  # 301 s before NOW
    assert hook.post(payload, headers=headers) == (401, "stale")
    payload["probe_id"] = "probe_b"
    if where == "header":
        headers["X-CallMeter-Timestamp"] = str(NOW + 400)
    else:
        payload.pop("timestamp", None)
        payload.pop("occurred_at", None)
        payload.pop("sent_at", None)
        payload["timestamp"] = NOW + 400  # from the future, too
    assert hook.post(payload, headers=headers) == (401, "stale")
    assert hook.sink.pushed == []


def test_a_delivery_inside_the_window_passes_and_a_zero_tolerance_checks_nothing() -> None:
    hook = Harness()
    assert hook.post(delivery(timestamp=NOW - 299)) == (200, "applied")
    lax = Harness(tolerance=0)
    assert lax.post(delivery(timestamp=NOW - 86400 * 30)) == (200, "applied")


def test_parse_time_reads_the_usual_forms() -> None:
    assert parse_time(NOW) == NOW
    assert parse_time(str(int(NOW))) == NOW
    assert parse_time(int(NOW * 1000)) == NOW
    assert parse_time("2027-01-15T08:00:00Z") == 1_800_000_000.0
    assert parse_time("2027-01-15T09:00:00+01:00") == 1_800_000_000.0
    for bad in ("2027-01-15T08:00:00", "soon", True, -5, float("nan")):
        with pytest.raises(ValueError):
            parse_time(bad)


@pytest.mark.parametrize(("value", "why"), [
    (True, "a timestamp cannot be a boolean"),
    ("soon", "the timestamp is neither Unix time nor ISO 8601"),
    ("2027-01-15T08:00:00", "an ISO 8601 timestamp needs a time zone"),
    ([1], "the timestamp is not a number"),
    (10**400, "the timestamp is out of range"),
    (0, "the timestamp is not a positive number"),
    (-5, "the timestamp is not a positive number"),
    (float("inf"), "the timestamp is not a positive number"),
])
def test_an_unreadable_time_says_why(value: object, why: str) -> None:
    with pytest.raises(ValueError, match=f"^{why}$"):
        parse_time(value)


def test_parse_time_edges() -> None:
    assert parse_time("2027-01-15T08:00:00z") == 1_800_000_000.0  # a lower-case zone letter too
    assert parse_time(0.5) == 0.5 and parse_time(1) == 1.0  # any positive Unix time
    assert parse_time(1e11) == 1e11  # the largest value read as seconds (the year 5138) ...
    assert parse_time(1e11 + 1000) == 1e8 + 1  # ... and above it, milliseconds


def test_a_signature_header_of_the_longest_allowed_length_is_read() -> None:
    digest = sign(KNOWN_BODY, SECRET)
    header = ", ".join([f"sha256={'0' * 64}"] * 13 + [digest])
    header = header + " " * (MAX_SIGNATURE_HEADER - len(header))
    assert len(header) == MAX_SIGNATURE_HEADER
    assert check_signature(KNOWN_BODY, header, [SECRET.encode()]) is Signature.VALID
    assert check_signature(KNOWN_BODY, header + " ", [SECRET.encode()]) is Signature.MALFORMED


def test_an_older_delivery_arriving_after_a_newer_one_changes_nothing_by_timestamp(hook: Harness) -> None:
    newer = delivery(new="HEALTHY", previous="UNHEALTHY", timestamp=NOW - 5)
    older = delivery(new="UNHEALTHY", previous="HEALTHY", timestamp=NOW - 20)
    assert hook.post(newer) == (200, "applied")
    assert hook.post(older) == (200, "out_of_order")
    assert [p[2] for p in hook.sink.pushed] == ["HEALTHY"]
    assert hook.post(delivery(new="DEGRADED", previous="HEALTHY", timestamp=NOW - 1)) == (200, "applied")


def test_an_older_delivery_without_timestamps_is_known_by_the_statuses_it_chains(hook: Harness) -> None:
    # Sent HEALTHY->UNHEALTHY, then UNHEALTHY->DEGRADED; they arrive the other way round.
    assert hook.post(delivery(new="DEGRADED", previous="UNHEALTHY")) == (200, "applied")
    assert hook.post(delivery(new="UNHEALTHY", previous="HEALTHY")) == (200, "out_of_order")
    # A flap back (DEGRADED->UNHEALTHY) follows on from the newest one: it is newer, not older.
    assert hook.post(delivery(new="UNHEALTHY", previous="DEGRADED")) == (200, "applied")
    assert [p[2] for p in hook.sink.pushed] == ["DEGRADED", "UNHEALTHY"]


def test_order_is_kept_per_probe(hook: Harness) -> None:
    assert hook.post(delivery("probe_a", new="HEALTHY", previous="UNHEALTHY", timestamp=NOW)) == (200, "applied")
    assert hook.post(delivery("probe_b", new="UNHEALTHY", previous="HEALTHY", timestamp=NOW - 30)) == (200, "applied")


def test_delivery_order_falls_back_to_arrival() -> None:
    order = DeliveryOrder(max_probes=2)
    probe = ("p", "a")
    order.accept(probe, Seen(None, None, "DEGRADED"))
    assert not order.is_older(probe, Seen(None, None, "HEALTHY"))
    for i in range(3):
        order.accept(("p", str(i)), Seen(NOW, None, "HEALTHY"))
    assert not order.is_older(("p", "0"), Seen(NOW - 10, None, "HEALTHY"))  # forgotten: bounded


def test_replay_memory_is_bounded_in_size_and_time() -> None:
    clock = Clock(0.0)
    memory = ReplayMemory(ttl=10, max_entries=3, clock=clock)
    assert all(memory.first_time(bytes([i])) for i in range(5))
    assert len(memory) == 3
    assert not memory.first_time(bytes([4]))
    clock.at = 11
    assert memory.first_time(bytes([4]))
    assert len(memory) == 1


def test_nudge_gate_lets_one_through_per_gap_and_key() -> None:
    clock = Clock(0.0)
    gate = NudgeGate(min_gap=10, clock=clock)
    assert gate.allow("a") and gate.allow("b")
    assert not gate.allow("a")
    clock.at = 9.9
    assert not gate.allow("a")
    clock.at = 10
    assert gate.allow("a")


# -- metrics and logs -------------------------------------------------------------------------------------

def test_every_result_starts_at_zero_and_changes_renew_the_exposition(hook: Harness) -> None:
    for result in RESULTS:
        assert hook.count(result) == 0
    before = hook.changes
    hook.post(delivery(), signature=None)
    assert hook.changes > before


def test_rejections_are_logged_once_per_burst_without_secret_or_signature(hook: Harness) -> None:
    body = json.dumps(delivery()).encode()
    bad = "sha256=" + "ab" * 32
    with capture_logs() as logs:
        for i in range(50):
            hook.post(body, signature=bad)
            hook.post(delivery("probe_b", timestamp=NOW + i))  # good ones in between do not end the burst
            hook.wall.at += 1
        hook.wall.at += 1000
        hook.post(body, signature=bad)  # a new burst
    rejected = [e for e in logs if e["event"] == "webhook.rejected"]
    assert [(e["result"], e["previous_burst"]) for e in rejected] == [("bad_signature", None),
                                                                      ("bad_signature", 50)]
    assert "CALLMETER_WEBHOOK_SECRET" in rejected[0]["hint"]
    assert hook.count("bad_signature") == 51 and hook.count("applied") == 50
    text = repr(logs)
    for secret in (SECRET, bad, bad.removeprefix("sha256="), sign(body, SECRET).removeprefix("sha256=")):
        assert secret not in text


# -- secrets ---------------------------------------------------------------------------------------------

def _rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a new mtime even within a tick


def test_a_secret_rotated_in_the_file_is_used_on_the_next_delivery(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text(f"# one per webhook\n{OTHER}\n\n{SECRET}\n")
    secrets = WebhookSecrets(path=path)
    assert secrets.current() == (OTHER.encode(), SECRET.encode())
    hook = Harness()
    hook.receiver = Receiver(secrets=secrets.current, metrics=hook.metrics, sink=hook.sink, wall=hook.wall,
                             clock=hook.wall)
    assert hook.post(delivery("probe_a"), secret=SECRET) == (200, "applied")
    rotated = "whsec_" + "n7" * 20
    _rewrite(path, rotated + "\n")
    assert hook.post(delivery("probe_b"), secret=SECRET) == (401, "bad_signature")
    assert hook.post(delivery("probe_b"), secret=rotated) == (200, "applied")


def test_a_broken_secret_file_keeps_the_last_good_secrets_and_says_so_once(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text(SECRET + "\n")
    secrets = WebhookSecrets(path=path)
    with capture_logs() as logs:
        _rewrite(path, "\n\n")
        assert secrets.current() == (SECRET.encode(),)
        path.unlink()
        assert secrets.current() == (SECRET.encode(),)
        path.write_text(OTHER + "\n")
        assert secrets.current() == (OTHER.encode(),)
    events = [e["event"] for e in logs]
    assert events.count("webhook_secrets.unreadable") == 1
    assert "webhook_secrets.readable" in events
    assert SECRET not in repr(logs) and OTHER not in repr(logs)


# -- settings --------------------------------------------------------------------------------------------

BASE = {"CALLMETER_API_KEY": "cmk_" + "a" * 32}


def test_webhook_settings_default_to_off_with_the_documented_path_and_header() -> None:
    settings = load(environ=BASE)
    assert not settings.webhooks_enabled
    assert settings.webhook_path == "/webhooks/callmeter"
    assert settings.webhook_signature_header == "X-CallMeter-Signature"
    assert settings.webhook_listen_address is None
    assert load(environ={**BASE, "CALLMETER_WEBHOOK_SECRET": SECRET}).webhooks_enabled


@pytest.mark.parametrize(("env", "names"), [
    ({"CALLMETER_WEBHOOK_SECRET": "two words"}, "CALLMETER_WEBHOOK_SECRET"),
    ({"CALLMETER_WEBHOOK_SECRET": SECRET, "CALLMETER_WEBHOOK_SECRET_FILE": "/x"}, "not both"),
    ({"CALLMETER_WEBHOOK_SECRET_FILE": "/nonexistent/secrets"}, "CALLMETER_WEBHOOK_SECRET_FILE"),
    ({"CALLMETER_WEBHOOK_SECRET": SECRET, "CALLMETER_WEBHOOK_PATH": "webhooks"}, "CALLMETER_WEBHOOK_PATH"),
    ({"CALLMETER_WEBHOOK_SECRET": SECRET, "CALLMETER_WEBHOOK_PATH": "/metrics"}, "CALLMETER_WEBHOOK_PATH"),
    ({"CALLMETER_WEBHOOK_LISTEN_ADDRESS": ":10191"}, "needs CALLMETER_WEBHOOK_SECRET"),
    ({"CALLMETER_WEBHOOK_SECRET": SECRET, "CALLMETER_WEBHOOK_LISTEN_ADDRESS": ":10190"}, "must differ"),
    ({"CALLMETER_WEBHOOK_SECRET": SECRET, "CALLMETER_WEBHOOK_LISTEN_ADDRESS": "nope"},
     "CALLMETER_WEBHOOK_LISTEN_ADDRESS"),
    ({"CALLMETER_WEBHOOK_SIGNATURE_HEADER": "X Bad: header"}, "CALLMETER_WEBHOOK_SIGNATURE_HEADER"),
    ({"CALLMETER_WEBHOOK_TIMESTAMP_TOLERANCE": "-1"}, "CALLMETER_WEBHOOK_TIMESTAMP_TOLERANCE"),
])
def test_a_bad_webhook_setting_names_itself_in_one_line_without_the_secret(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load(environ={**BASE, **env})
    message = str(caught.value)
    assert names in message and "\n" not in message
    assert SECRET not in message and "two words" not in message


def test_a_secret_file_with_a_bad_line_names_the_line_not_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_text(f"{SECRET}\n\x07bell{SECRET}\n")
    with pytest.raises(SettingsError) as caught:
        load(environ={**BASE, "CALLMETER_WEBHOOK_SECRET_FILE": str(path)})
    assert "line 2" in str(caught.value) and SECRET not in str(caught.value)


# -- the manual ------------------------------------------------------------------------------------------

def test_the_manual_documents_every_webhook_setting_result_and_family() -> None:
    section = (ROOT / "docs" / "webhooks.md").read_text()
    families = (ROOT / "docs" / "generated" / "metrics-webhooks.md").read_text()
    for result in RESULTS:
        assert f"`{result}`" in section, result
    for family in ("callmeter_exporter_webhook_deliveries_total", "callmeter_exporter_webhook_disagreements_total",
                   "callmeter_exporter_webhook_last_delivery_timestamp_seconds",
                   "callmeter_exporter_webhook_confirmation_delay_seconds"):
        assert f"| `{family}` |" in families, family
    for header in ("X-CallMeter-Signature", "new_status", "current_status", "CALLMETER_WEBHOOK_LISTEN_ADDRESS"):
        assert header in section
