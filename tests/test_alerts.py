"""The week's alerts: what they list, how they are sent (a real SMTP server and a real HTTP server on
127.0.0.1, started here), and that a failed send, a secret or a hostile data value never escapes."""
from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import section_examples as ex

from playbook.report.summary import Summary
from playbook.run import alerts as al

REPORT = "https://intranet.example/returns/2026-W47/index.html"
TRIGGERS = [
    {"zone": "execution", "metric": "closure_rate", "action": "reduce scope, name an owner", "why": "66.7 % below 80 %"},
    {"zone": "returns", "metric": "return_rate_14d", "action": "open the weak-cohort step", "why": "18 % above 16 %"},
]


#: the metrics' names for people (the metric dictionary's titles), as the alert names them
TITLES = {"closure_rate": "Action closure rate", "return_rate_14d": "Return rate within 14 days of delivery"}


def week_summary(**sections) -> Summary:
    return Summary.from_json(ex.summary(baseline=ex.baseline(triggers=TRIGGERS), **sections))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- servers started by the tests ------------------------------------------------------------------

class _Sink:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, sink
    finally:
        controller.stop()


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    def start(status: int = 200):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
        server.received, server.status = [], status
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    servers: list[ThreadingHTTPServer] = []
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def smtp_env(port: int, **extra) -> dict[str, str]:
    return {al.SMTP_HOST_ENV: "127.0.0.1", al.SMTP_PORT_ENV: str(port), al.SMTP_STARTTLS_ENV: "off",
            al.SMTP_FROM_ENV: "playbook@shop.example", al.SMTP_TO_ENV: "ana@shop.example, bo@shop.example", **extra}


# --- what alerts -----------------------------------------------------------------------------------

def test_a_week_alerts_on_each_red_trigger_overdue_review_and_verdict():
    alerts = al.week_alerts(week_summary(), REPORT)
    kinds = [(i.kind, i.subject) for i in alerts.items]
    assert kinds == [(al.AlertKind.RED_TRIGGER, "Action closure rate"),
                     (al.AlertKind.RED_TRIGGER, "Return rate within 14 days of delivery"),
                     (al.AlertKind.OVERDUE_REVIEW, "EXP-2026-W41-DRESSES-PHOTOS"), (al.AlertKind.VERDICT, "EXP-1")]
    assert alerts.reds == 2 and alerts.week == "2026-W47"


def test_the_alert_speaks_like_the_pages_names_units_currency_and_each_experiment_named_once():
    text = al.render(al.week_alerts(week_summary(), REPORT))
    assert "closure_rate" not in text and "return_rate_14d" not in text
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert all(line.count("EXP-") <= 1 for line in lines), lines
    (verdict,) = [line for line in lines if "EXP-1" in line]
    assert ("fit/size message block on the product page on knitwear: keep: roll it out (look 1 of 4). "
            "Return rate within 14 days of delivery: -3.0 points (-5.0 to -1.0); EUR 1,332 per week saved") in verdict
    (overdue,) = [line for line in lines if "EXP-2026-W41" in line]
    assert overdue.startswith("- EXP-2026-W41-DRESSES-PHOTOS") and overdue.count("EXP-2026-W41") == 1


def test_a_quiet_week_has_no_alert():
    quiet = Summary.from_json(ex.summary(baseline=ex.baseline(triggers=[]), overdue=[], review=[]))
    assert al.week_alerts(quiet, REPORT).items == ()


def test_the_subject_names_the_week_and_the_number_of_reds():
    assert al.week_alerts(week_summary(), REPORT).subject() == (
        "Returns playbook 2026-W47: 2 red triggers, 1 overdue review, 1 verdict")


def test_the_report_link_follows_the_published_address_when_there_is_one(tmp_path):
    folder = tmp_path / "2026-W47"
    assert al.report_link(folder, env={al.REPORT_URL_ENV: "https://intranet.example/returns/"}) == REPORT
    assert al.report_link(folder, env={}) == (folder / "index.html").resolve().as_uri()


# --- the e-mail, to a real SMTP server ----------------------------------------------------------------

def test_the_email_names_the_week_and_reds_and_lists_each_trigger_with_its_action_and_the_report(smtp_server):
    port, sink = smtp_server
    alerts = al.deliver(al.week_alerts(week_summary(), REPORT), env=smtp_env(port), log=lambda _: None)
    assert [d.sent for d in alerts.deliveries] == [True]
    (envelope,) = sink.envelopes
    assert envelope.rcpt_tos == ["ana@shop.example", "bo@shop.example"]
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    # a long subject is folded after "Subject:" and reads back with a leading space (the email package)
    assert message["Subject"].strip() == "Returns playbook 2026-W47: 2 red triggers, 1 overdue review, 1 verdict"
    body = message.get_content()
    for t in TRIGGERS:
        title = TITLES[t["metric"]]
        assert any(line.startswith(f"- {title}: ") and t["action"] in line for line in body.splitlines()), title
    assert f"Report: {REPORT}" in body


def test_an_unreachable_smtp_server_is_a_failed_delivery_not_an_error():
    alerts = al.deliver(al.week_alerts(week_summary(), REPORT), env=smtp_env(free_port()), log=lambda _: None)
    (delivery,) = alerts.deliveries
    assert not delivery.sent and "ConnectionRefusedError" in delivery.error


def test_a_user_without_a_password_in_the_environment_is_a_failed_delivery_naming_the_variable():
    env = smtp_env(25, **{al.SMTP_USER_ENV: "ana", al.SMTP_STARTTLS_ENV: "on"})
    (delivery,) = al.deliver(al.week_alerts(week_summary(), REPORT), env=env, log=lambda _: None).deliveries
    assert not delivery.sent and al.SMTP_PASSWORD_ENV in delivery.error


def test_a_password_is_never_sent_without_starttls():
    env = smtp_env(25, **{al.SMTP_USER_ENV: "ana", al.SMTP_PASSWORD_ENV: "pw-Hunter2"})
    with pytest.raises(al.AlertConfigError, match="in clear"):
        al.SmtpSettings.from_env(env)


def test_the_smtp_password_never_lands_in_the_alert_files_or_the_log(smtp_server, tmp_path):
    port, sink = smtp_server  # this server offers no STARTTLS: the send fails before any login
    env = smtp_env(port, **{al.SMTP_STARTTLS_ENV: "on", al.SMTP_USER_ENV: "ana", al.SMTP_PASSWORD_ENV: "pw-Hunter2"})
    lines: list[str] = []
    alerts = al.deliver(al.week_alerts(week_summary(), REPORT), env=env, log=lines.append)
    al.write_alerts(tmp_path, alerts)
    assert not alerts.deliveries[0].sent and sink.envelopes == []
    written = (tmp_path / al.ALERTS_MD).read_text() + (tmp_path / al.ALERTS_JSON).read_text() + "\n".join(lines)
    assert "STARTTLS" in written and "pw-Hunter2" not in written


# --- the chat webhook, to a real HTTP server ----------------------------------------------------------

def test_the_webhook_receives_the_alert_as_json_text(webhook_server):
    server = webhook_server()
    url = f"http://127.0.0.1:{server.server_port}/hooks/T0KEN-s3cr3t-abcdef"
    alerts = al.deliver(al.week_alerts(week_summary(), REPORT), env={al.WEBHOOK_URL_ENV: url}, log=lambda _: None)
    assert [d.sent for d in alerts.deliveries] == [True]
    ((path, content_type, body),) = server.received
    text = json.loads(body)["text"]
    assert path == "/hooks/T0KEN-s3cr3t-abcdef" and content_type.startswith("application/json")
    assert text.startswith("# Returns playbook 2026-W47: 2 red triggers") and "reduce scope, name an owner" in text


def test_a_failing_webhook_is_recorded_in_alerts_json_and_the_log_without_its_token(webhook_server, tmp_path):
    server = webhook_server(status=500)
    url = f"http://127.0.0.1:{server.server_port}/hooks/T0KEN-s3cr3t-abcdef?key=QUERYs3cr3t"
    lines: list[str] = []
    alerts = al.deliver(al.week_alerts(week_summary(), REPORT), env={al.WEBHOOK_URL_ENV: url}, log=lines.append)
    al.write_alerts(tmp_path, alerts)
    recorded = json.loads((tmp_path / al.ALERTS_JSON).read_text())["deliveries"]
    assert recorded == [{"channel": "webhook", "target": f"http://127.0.0.1:{server.server_port}", "sent": False,
                         "error": "HTTPError: HTTP Error 500: Internal Server Error"}]
    assert any("NOT sent" in line for line in lines)
    written = (tmp_path / al.ALERTS_MD).read_text() + (tmp_path / al.ALERTS_JSON).read_text() + "\n".join(lines)
    assert "T0KEN" not in written and "QUERYs3cr3t" not in written


def test_the_webhook_token_is_scrubbed_from_an_error_that_quotes_the_url():
    url = "https://hooks.example/services/T0KEN-s3cr3t-abcdef"
    assert "T0KEN" not in al._scrub(f"ValueError: cannot post to {url}", al._url_secrets(url))


# --- untrusted data text ---------------------------------------------------------------------------

HOSTILE = "EXP-<img src=x onerror=alert(1)>\n## Forged heading [click](https://evil.example)"


def test_data_text_is_escaped_and_kept_on_one_line_in_the_markdown(tmp_path):
    summary = week_summary(review=[ex.review(experiment_id=HOSTILE)])
    al.write_alerts(tmp_path, al.week_alerts(summary, REPORT))
    text = (tmp_path / al.ALERTS_MD).read_text()
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "\n## Forged" not in text and "\\[click\\](https://evil.example)" in text


def test_the_plain_text_email_carries_data_text_as_is_on_one_line():
    summary = week_summary(review=[ex.review(experiment_id=HOSTILE)])
    body = al.render(al.week_alerts(summary, REPORT), esc=al.one_line)
    assert "- EXP-<img src=x onerror=alert(1)> ## Forged heading [click](https://evil.example): keep: roll it out" in body


# --- the files -------------------------------------------------------------------------------------

def test_alerts_json_reads_back_the_alert(tmp_path):
    alerts = al.week_alerts(week_summary(), REPORT)
    al.write_alerts(tmp_path, alerts)
    written = json.loads((tmp_path / al.ALERTS_JSON).read_text())
    assert written["subject"] == alerts.subject() and written["reds"] == 2 and written["report"] == REPORT
    assert [i["kind"] for i in written["items"]] == ["red_trigger", "red_trigger", "overdue_review", "verdict"]
    assert written["outcome"] == "complete" and written["deliveries"] == []


def test_a_failed_run_alerts_with_the_runners_message():
    alerts = al.failure_alerts("2026-W47", "02_bad.ipynb failed at cell 3", Path("/r/2026-W47.failed").as_uri())
    assert alerts.subject() == "Returns playbook 2026-W47: the weekly run FAILED"
    assert "02_bad.ipynb failed at cell 3" in al.render(alerts)
