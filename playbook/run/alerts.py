"""The week's alerts: what needs a person this week, written beside the report and sent if asked.

A complete week with red triggers, an overdue review or a verdict, or a run that failed, gets
``alerts.md`` (read by people, the body of the e-mail and the chat post) and ``alerts.json`` (read by
machines, with the outcome of each delivery) in the week's folder: ``<out>/<WEEK>/`` for a complete
report, ``<out>/<WEEK>.failed/`` for a failed run (the runner's mark of a failed run, which the next
complete run of the week clears). A quiet week writes nothing and sends nothing.

Delivery is configured by the environment only, so that no secret is ever a parameter, a log line or a
file (the scheduler's secret store fills these variables):

* e-mail: ``PLAYBOOK_SMTP_HOST`` (sending is on when it is set), ``PLAYBOOK_SMTP_PORT`` (default 587
  with STARTTLS, 25 without), ``PLAYBOOK_SMTP_FROM``, ``PLAYBOOK_SMTP_TO`` (comma-separated),
  ``PLAYBOOK_SMTP_STARTTLS`` (default on; ``0``/``false``/``no``/``off`` for a relay on the same host),
  ``PLAYBOOK_SMTP_USER`` and ``PLAYBOOK_SMTP_PASSWORD`` (optional; the password is sent only over STARTTLS);
* chat: ``PLAYBOOK_ALERT_WEBHOOK_URL``, an incoming-webhook URL (Slack, Mattermost, Google Chat, Teams
  workflows) that takes ``{"text": ...}``; its path carries the token, so only its scheme and host are
  ever printed;
* ``PLAYBOOK_REPORT_URL``: where the reports folder is published (``https://intranet/returns/``); the
  alert links ``<that>/<WEEK>/index.html``, else the report's local ``file://`` address.

A failed delivery never fails the run: it is logged and recorded in ``alerts.json`` (without the
secret). Text from the data (experiment ids, cohort names, reasons) is untrusted: it is kept on one line
(a value cannot forge a heading or an item), and in the Markdown form (the file and the chat post)
``& < >`` are escaped as entities (Slack's own escaping rule; raw HTML in Markdown renders as HTML) and
``[ ] `` ` are backslash-escaped (no forged link). The e-mail is plain text and carries the text as is.
"""
from __future__ import annotations

import html
import json
import os
import smtplib
import ssl
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from enum import StrEnum
from pathlib import Path
from typing import Callable, Mapping

from playbook.config.loader import load_config
from playbook.core.atomic import write_json, write_text
from playbook.core.jsonmodel import to_json
from playbook.core.settings import Config
from playbook.report import story
from playbook.report.pages import display_for
from playbook.report.summary import Summary

ALERTS_MD = "alerts.md"
ALERTS_JSON = "alerts.json"

SMTP_HOST_ENV = "PLAYBOOK_SMTP_HOST"
SMTP_PORT_ENV = "PLAYBOOK_SMTP_PORT"
SMTP_FROM_ENV = "PLAYBOOK_SMTP_FROM"
SMTP_TO_ENV = "PLAYBOOK_SMTP_TO"
SMTP_STARTTLS_ENV = "PLAYBOOK_SMTP_STARTTLS"
SMTP_USER_ENV = "PLAYBOOK_SMTP_USER"
SMTP_PASSWORD_ENV = "PLAYBOOK_SMTP_PASSWORD"
WEBHOOK_URL_ENV = "PLAYBOOK_ALERT_WEBHOOK_URL"
REPORT_URL_ENV = "PLAYBOOK_REPORT_URL"
#: every variable the alerts read, for the command's help
ENVIRONMENT = (SMTP_HOST_ENV, SMTP_PORT_ENV, SMTP_FROM_ENV, SMTP_TO_ENV, SMTP_STARTTLS_ENV, SMTP_USER_ENV,
               SMTP_PASSWORD_ENV, WEBHOOK_URL_ENV, REPORT_URL_ENV)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class AlertKind(StrEnum):
    """Why a week alerts, in the order the alert lists them."""

    FAILED_RUN = "failed_run"
    RED_TRIGGER = "red_trigger"
    OVERDUE_REVIEW = "overdue_review"
    VERDICT = "verdict"


_HEADINGS = {
    AlertKind.FAILED_RUN: "Failed run",
    AlertKind.RED_TRIGGER: "Red triggers",
    AlertKind.OVERDUE_REVIEW: "Overdue reviews",
    AlertKind.VERDICT: "Verdicts",
}


class Outcome(StrEnum):
    COMPLETE = "complete"  # the week's report is complete (it may have reds)
    FAILED = "failed"      # the run stopped; the week's previous complete report, if any, is untouched


@dataclass(frozen=True)
class AlertItem:
    """One thing a person must look at: ``subject`` (a metric, an experiment, the run), what happened
    (``text``) and what to do (``action``; None when the source says nothing)."""

    kind: AlertKind
    subject: str
    text: str
    action: str | None


@dataclass(frozen=True)
class Delivery:
    """The outcome of one send. ``target`` names where without any secret (SMTP host and port and the
    number of recipients; the webhook's scheme and host); ``error`` is None when it was sent."""

    channel: str
    target: str
    sent: bool
    error: str | None = None


@dataclass(frozen=True)
class Alerts:
    """The week's alerts, as written to ``alerts.json``; ``report`` links the report (or the failure)."""

    week: str
    outcome: Outcome
    report: str
    items: tuple[AlertItem, ...]
    deliveries: tuple[Delivery, ...] = ()

    def count(self, kind: AlertKind) -> int:
        return sum(item.kind == kind for item in self.items)

    @property
    def reds(self) -> int:
        return self.count(AlertKind.RED_TRIGGER)

    def subject(self) -> str:
        """The e-mail subject: the week, the outcome and the number of reds (no data text in it)."""
        if self.outcome is Outcome.FAILED:
            return f"Returns playbook {self.week}: the weekly run FAILED"
        parts = [f"{self.reds} red trigger{'s' if self.reds != 1 else ''}"]
        for kind, word in ((AlertKind.OVERDUE_REVIEW, "overdue review"), (AlertKind.VERDICT, "verdict")):
            n = self.count(kind)
            if n:
                parts.append(f"{n} {word}{'s' if n != 1 else ''}")
        return f"Returns playbook {self.week}: {', '.join(parts)}"

    def to_json(self) -> dict:
        return {"week": self.week, "outcome": self.outcome.value, "subject": self.subject(), "reds": self.reds,
                "report": self.report, "items": to_json(self.items), "deliveries": to_json(self.deliveries)}


# --- what alerts -----------------------------------------------------------------------------------

def week_alerts(summary: Summary, report: str, config: Config | None = None) -> Alerts:
    """The alerts of a complete week from its typed summary: red triggers, overdue reviews, verdicts, in
    the words of the report's pages (metric names, units, the shop's currency from ``config``: the
    default configuration when None; :mod:`playbook.report.story`).

    Sections absent from the summary (their notebook did not run) contribute nothing.
    """
    config = config if config is not None else load_config()
    d = display_for(config)
    metrics = summary.baseline.metrics if summary.baseline else {}
    items: list[AlertItem] = []
    for t in summary.baseline.triggers if summary.baseline else ():
        owner = f", owner: {t.owner}" if t.owner else ""
        title = metrics[t.metric].title if t.metric in metrics and metrics[t.metric].title else d.title(t.metric)
        items.append(AlertItem(AlertKind.RED_TRIGGER, title, f"{t.why} (zone: {t.zone}{owner})", t.action))
    for o in summary.overdue or ():
        # the entry's text names the experiment, the date the review was due and what to do
        items.append(AlertItem(AlertKind.OVERDUE_REVIEW, o.experiment_id, o.text, None))
    for v in story.verdict_lines(summary, d, config):
        money = f"; {v.money.striptags()}" if v.money else ""
        text = f"{v.change}: {v.decision_words}. {v.effect.striptags()}{money}"
        items.append(AlertItem(AlertKind.VERDICT, v.experiment_id, text, v.next_step or None))
    return Alerts(summary.week or "", Outcome.COMPLETE, report, tuple(items))


def failure_alerts(week: str, error: str, report: str) -> Alerts:
    """The alert of a run that stopped: ``error`` is the runner's message (it names the notebook and
    the cell, or the broken input), already free of secrets (sources are redacted by the data layer)."""
    item = AlertItem(AlertKind.FAILED_RUN, "weekly run", error,
                     "fix the cause and run the week again; the previous complete report of the week is untouched")
    return Alerts(week, Outcome.FAILED, report, (item,))


def report_link(folder: Path, page: str = "index.html", env: Mapping[str, str] = os.environ) -> str:
    """The address of ``folder/page``: under ``PLAYBOOK_REPORT_URL`` when the reports are published, else file://."""
    base = env.get(REPORT_URL_ENV, "").strip()
    if base:
        return f"{base.rstrip('/')}/{urllib.parse.quote(folder.name)}/{page}"
    return (folder / page).resolve().as_uri()


# --- how it reads ----------------------------------------------------------------------------------

def one_line(text: str) -> str:
    """``text`` on one line, without control characters (a value cannot start a heading or an item)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())


def markdown_text(text: str) -> str:
    """Untrusted ``text`` for Markdown: one line, ``& < >`` as entities, ``[ ] `` ` backslash-escaped."""
    escaped = html.escape(one_line(text), quote=False)
    for ch in "[]`":
        escaped = escaped.replace(ch, "\\" + ch)
    return escaped


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def render(alerts: Alerts, esc: Callable[[str], str] = markdown_text) -> str:
    """The alert as Markdown (default) or, with ``esc=one_line``, the plain text of the e-mail."""
    lines = [f"# {alerts.subject()}", "", f"Report: {alerts.report}"]
    for kind in AlertKind:
        items = [i for i in alerts.items if i.kind == kind]
        if not items:
            continue
        lines += ["", f"## {_HEADINGS[kind]} ({len(items)})", ""]
        for i in items:
            # a text that already names its subject (an overdue review names its experiment) does not repeat it
            said = esc(i.text) if i.text.startswith(i.subject) else f"{esc(i.subject)}: {esc(i.text)}"
            line = f"- {_sentence(said)}"
            lines.append(line + (f" Action: {_sentence(esc(i.action))}" if i.action else ""))
    return "\n".join(lines) + "\n"


def write_alerts(folder: Path, alerts: Alerts) -> Path:
    """Write ``alerts.md`` and ``alerts.json`` into ``folder`` (atomic writes); return the Markdown path."""
    path = write_text(folder / ALERTS_MD, render(alerts))
    write_json(folder / ALERTS_JSON, alerts.to_json())
    return path


# --- delivery --------------------------------------------------------------------------------------

class AlertConfigError(ValueError):
    """The delivery variables are inconsistent; the message names the variable, never its secret value."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise AlertConfigError(f"{name} must be one of {', '.join(_TRUE + _FALSE)}, got {value!r}")


@dataclass(frozen=True)
class SmtpSettings:
    """The SMTP server of the alert e-mail, read from the environment (see the module's docstring)."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = True
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SmtpSettings | None:
        """None when ``PLAYBOOK_SMTP_HOST`` is unset (no e-mail); AlertConfigError when incomplete."""
        host = env.get(SMTP_HOST_ENV, "").strip()
        if not host:
            return None
        starttls = _flag(env, SMTP_STARTTLS_ENV, True)
        port_text = env.get(SMTP_PORT_ENV, "").strip() or ("587" if starttls else "25")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise AlertConfigError(f"{SMTP_PORT_ENV} must be a port number, got {port_text!r}")
        sender = env.get(SMTP_FROM_ENV, "").strip()
        recipients = tuple(r.strip() for r in env.get(SMTP_TO_ENV, "").split(",") if r.strip())
        if not sender or not recipients:
            raise AlertConfigError(f"{SMTP_HOST_ENV} is set: {SMTP_FROM_ENV} and {SMTP_TO_ENV} must be set too")
        user = env.get(SMTP_USER_ENV, "").strip() or None
        password = env.get(SMTP_PASSWORD_ENV) or None
        if user and not password:
            raise AlertConfigError(f"{SMTP_USER_ENV} is set but {SMTP_PASSWORD_ENV} is not")
        if user and not starttls:
            raise AlertConfigError(f"{SMTP_USER_ENV} is set with {SMTP_STARTTLS_ENV} off: "
                                   "the password would cross the network in clear")
        return cls(host, int(port_text), sender, recipients, starttls, user, password)

    def target(self) -> str:
        return f"{self.host}:{self.port} to {len(self.recipients)} recipient(s)"


def _scrub(text: str, secrets: tuple[str | None, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return one_line(text)


def email_message(alerts: Alerts, settings: SmtpSettings) -> EmailMessage:
    """The alert as a plain-text e-mail (the Markdown structure reads as text)."""
    message = EmailMessage()
    message["Subject"] = alerts.subject()
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message.set_content(render(alerts, esc=one_line))
    return message


def send_email(alerts: Alerts, settings: SmtpSettings, timeout: float = 30.0) -> Delivery:
    """Send the alert through ``settings``' SMTP server; a failure is returned, never raised."""
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.user:
                smtp.login(settings.user, settings.password or "")
            smtp.send_message(email_message(alerts, settings))
    except Exception as exc:  # any failure of the send is reported, the run goes on
        error = _scrub(f"{type(exc).__name__}: {exc}", (settings.password,))
        return Delivery("email", settings.target(), False, error)
    return Delivery("email", settings.target(), True)


def webhook_target(url: str) -> str:
    """The webhook's scheme and host only: its path and query carry the token."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def _url_secrets(url: str) -> tuple[str, ...]:
    parts = urllib.parse.urlsplit(url)
    pieces = [url, parts.path, parts.query, parts.password or ""]
    pieces += [p for p in parts.path.split("/") if len(p) >= 6]
    pieces += [v for _, v in urllib.parse.parse_qsl(parts.query) if len(v) >= 6]
    return tuple(sorted({p for p in pieces if p}, key=len, reverse=True))  # longest first


def post_webhook(alerts: Alerts, url: str, timeout: float = 15.0) -> Delivery:
    """POST ``{"text": <alerts.md>}`` as JSON to the chat webhook; a failure is returned, never raised."""
    target = webhook_target(url)
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        return Delivery("webhook", target, False, f"{WEBHOOK_URL_ENV} is not an http(s) URL")
    body = json.dumps({"text": render(alerts)}).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except Exception as exc:  # HTTP errors, refused connections, timeouts: reported, the run goes on
        return Delivery("webhook", target, False, _scrub(f"{type(exc).__name__}: {exc}", _url_secrets(url)))
    if not 200 <= status < 300:
        return Delivery("webhook", target, False, f"HTTP status {status}")
    return Delivery("webhook", target, True)


def deliver(alerts: Alerts, env: Mapping[str, str] = os.environ,
            log: Callable[[str], None] = lambda text: print(text, flush=True)) -> Alerts:
    """Send ``alerts`` by every channel the environment configures; ``alerts`` with the deliveries added.

    Each outcome is logged (where, never a secret); a misconfigured channel counts as a failed delivery.
    """
    deliveries: list[Delivery] = []
    try:
        smtp = SmtpSettings.from_env(env)
    except AlertConfigError as exc:
        deliveries.append(Delivery("email", env.get(SMTP_HOST_ENV, "").strip(), False, str(exc)))
    else:
        if smtp is not None:
            deliveries.append(send_email(alerts, smtp))
    url = env.get(WEBHOOK_URL_ENV, "").strip()
    if url:
        deliveries.append(post_webhook(alerts, url))
    for d in deliveries:
        log(f"Alert by {d.channel} to {d.target}: " + ("sent" if d.sent else f"NOT sent ({d.error})"))
    return replace(alerts, deliveries=alerts.deliveries + tuple(deliveries))
