"""Email by SMTP (the standard library's smtplib and email.message): settings from the environment."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid


class MailError(Exception):
    """`retryable`: a 4xx answer or no connection (not taken); `ambiguous`: the connection dropped
    after the message's data went out (it may have been taken)."""

    def __init__(self, message: str, *, retryable: bool = False, ambiguous: bool = False):
        super().__init__(message)
        self.retryable, self.ambiguous = retryable, ambiguous


@dataclass
class Mailer:
    host: str
    port: int = 587
    username: str = ""
    password: str = ""
    starttls: bool = True
    sender: str = "fanout@localhost"
    timeout: float = 10.0

    def send(self, to: str, subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or "localhost")
        message.set_content(text)
        sent_data = False
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password)
                sent_data = True
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise MailError(f"recipient refused ({codes[0] if codes else '?'})", retryable=_transient(codes)) from None
        except smtplib.SMTPResponseException as exc:
            reason = (
                exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            )
            raise MailError(f"SMTP {exc.smtp_code}: {reason}"[:250], retryable=400 <= exc.smtp_code < 500) from None
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
            if sent_data:
                raise MailError("the SMTP connection dropped while sending", ambiguous=True) from None
            raise MailError(f"cannot reach the SMTP server ({type(exc).__name__})", retryable=True) from None
        except smtplib.SMTPException as exc:
            raise MailError(f"SMTP error: {type(exc).__name__}", retryable=False) from None


def _transient(codes: list[int]) -> bool:
    return bool(codes) and all(400 <= code < 500 for code in codes)


def mailer_from_config(config) -> Mailer | None:
    host = config.get("SMTP_HOST")
    if not host:
        return None
    return Mailer(
        host=host,
        port=int(config.get("SMTP_PORT") or 587),
        username=config.get("SMTP_USERNAME") or "",
        password=config.get("SMTP_PASSWORD") or "",
        starttls=bool(config.get("SMTP_STARTTLS")),
        sender=config.get("MAIL_FROM") or "fanout@localhost",
    )
