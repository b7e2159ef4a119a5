"""Masking of credentials: the one helper for everything logged or served (logs, /ready, errors).

A URL's user information (`https://user:pass@host`) is replaced by `***@`; secrets held in
settings are masked by Settings.redacted(), which uses redact_url for URL-valued settings.
"""
from __future__ import annotations

import re

MASK = "***"
# scheme://userinfo@ up to the last "@" before the path (a password may hold an unencoded "@").
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s\"'<>]+@")


def redact_url(url: str) -> str:
    """Return url with any user:password@ replaced by ***@."""
    return _USERINFO.sub(rf"\1{MASK}@", url)


def redact_text(text: str) -> str:
    """Return text with the user information of every URL in it masked (error messages, log lines)."""
    if "@" not in text:
        return text
    return _USERINFO.sub(rf"\1{MASK}@", text)
