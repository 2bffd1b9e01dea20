"""Sending email: an HTTPS email API in production, a development mailbox (a directory) locally.

Every message has an id chosen by the sender (an outbox key): the HTTPS client
sends it as the `Idempotency-Key` header, and the mailbox stores one file per
id, so a message sent again is delivered once.

The endpoint is one setting:

- `https://...`: POST JSON `{"message_id", "from", "to", "subject", "text"}`
  with `Authorization: Bearer <token>`; any 2xx is delivered, 4xx other than
  408/429 is refused for good, anything else is retried;
- `file:<directory>`: the development mailbox, one JSON file per message,
  which tests and developers read. Refused in production.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

MESSAGE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")
RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Email:
    message_id: str
    sender: str
    to: str
    subject: str
    text: str


class MailRefused(Exception):
    """The email API refused the message for good (retrying cannot help)."""


class MailUnavailable(Exception):
    """The email API could not take the message now; retry."""


class Mailer(Protocol):
    def send(self, email: Email) -> None: ...


def check_endpoint(endpoint: str, *, production: bool) -> str | None:
    """Why the endpoint is unacceptable, or None."""
    parts = urlsplit(endpoint)
    if parts.scheme == "https" and parts.netloc:
        host = parts.hostname or ""
        if production and (host in ("localhost", "127.0.0.1", "::1") or host.endswith(".local")):
            return "must be a production email API, not a local address"
        return None
    if parts.scheme == "file" and parts.path:
        return "a development mailbox is not allowed in production" if production else None
    return "must be an https:// URL (or file:<directory> for a development mailbox)"


def mailer_for(endpoint: str, token: str, timeout_seconds: float = 10.0) -> Mailer:
    parts = urlsplit(endpoint)
    if parts.scheme == "file":
        return DirectoryMailbox(Path(parts.path))
    return HttpMailer(endpoint, token, timeout_seconds)


class HttpMailer:
    def __init__(self, endpoint: str, token: str, timeout_seconds: float) -> None:
        self.endpoint = endpoint
        self.token = token
        self.timeout_seconds = timeout_seconds

    def send(self, email: Email) -> None:
        body = json.dumps(
            {
                "message_id": email.message_id,
                "from": email.sender,
                "to": email.to,
                "subject": email.subject,
                "text": email.text,
            }
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked at start-up: https only
            self.endpoint,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.token}",
                "Idempotency-Key": email.message_id,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds):  # noqa: S310
                return
        except urllib.error.HTTPError as error:
            error.close()
            if 400 <= error.code < 500 and error.code not in RETRYABLE_STATUSES:
                raise MailRefused(f"the email API refused the message: HTTP {error.code}") from error
            raise MailUnavailable(f"the email API answered HTTP {error.code}") from error
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise MailUnavailable(f"the email API cannot be reached: {error}") from error


class DirectoryMailbox:
    """The development mailbox: `<directory>/<message_id>.json`, written atomically, once per id."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, email: Email) -> None:
        if not MESSAGE_ID_PATTERN.match(email.message_id):
            raise MailRefused(f"message id {email.message_id!r} cannot name a mailbox file")
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{email.message_id}.json"
        if target.exists():
            return
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".incoming-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(asdict(email), out, indent=2)
        os.replace(temporary, target)

    def messages(self) -> list[Email]:
        """Every message delivered, oldest first."""
        if not self.directory.exists():
            return []
        files = sorted(self.directory.glob("*.json"), key=lambda path: path.stat().st_mtime_ns)
        return [Email(**json.loads(path.read_text(encoding="utf-8"))) for path in files]
