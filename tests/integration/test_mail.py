"""The email clients over a real socket and a real directory: headers, idempotency, what is retried."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from svckit.mail import DirectoryMailbox, Email, HttpMailer, MailRefused, MailUnavailable

EMAIL = Email("notify:payment-failed:in_1:1", "billing@example.com", "ann@example.com", "Failed", "Text")


class EmailApi:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answer = 202


@pytest.fixture
def api() -> Iterator[tuple[EmailApi, str]]:
    state = EmailApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append({"headers": dict(self.headers), "body": json.loads(body)})
            self.send_response(state.answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/send"
    finally:
        server.shutdown()
        server.server_close()


def test_the_http_client_sends_the_message_id_as_idempotency_key(api: tuple[EmailApi, str]) -> None:
    state, url = api
    HttpMailer(url, "secret-token", 5).send(EMAIL)
    (request,) = state.received
    assert request["headers"]["Idempotency-Key"] == EMAIL.message_id
    assert request["headers"]["Authorization"] == "Bearer secret-token"
    assert request["body"] == {
        "message_id": EMAIL.message_id,
        "from": "billing@example.com",
        "to": "ann@example.com",
        "subject": "Failed",
        "text": "Text",
    }


@pytest.mark.parametrize(("status", "error"), [(500, MailUnavailable), (429, MailUnavailable), (400, MailRefused)])
def test_failures_are_retried_or_refused_for_good(api: tuple[EmailApi, str], status: int, error: type) -> None:
    state, url = api
    state.answer = status
    with pytest.raises(error):
        HttpMailer(url, "t", 5).send(EMAIL)


def test_an_unreachable_api_is_retried() -> None:
    with pytest.raises(MailUnavailable):
        HttpMailer("http://127.0.0.1:9/send", "t", 2).send(EMAIL)


def test_the_development_mailbox_keeps_one_file_per_message(tmp_path: Path) -> None:
    mailbox = DirectoryMailbox(tmp_path / "mailbox")
    mailbox.send(EMAIL)
    mailbox.send(EMAIL)
    mailbox.send(Email("notify:trial-ending:sub_1:5", "b@example.com", "ann@example.com", "Trial", "Ends"))
    assert [m.subject for m in mailbox.messages()] == ["Failed", "Trial"]
    with pytest.raises(MailRefused):
        mailbox.send(Email("../escape", "b@example.com", "x@example.com", "s", "t"))
