"""The one place that makes URIs and messages safe to show or log.

- `redact_uri(uri)`: credentials out of one URI (`http://user:pw@host` -> `http://user:***@host`, secret
  query parameters such as `?token=` -> `***`).
- `redact_text(text)`: the same for every URI inside a free-text message (MLflow errors quote the URI).
- `public_text(text, roots)`: what an error BODY may say: `redact_text`, then absolute server paths
  replaced (`<root>/...` -> `$MARKET_MASTER_HOME/...`, any other absolute path -> `.../<last part>`).
- `RedactingFilter`: a logging filter that passes every record's message through `redact_text`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
HOME_TOKEN = "$MARKET_MASTER_HOME"
_SECRET_PARAMS = re.compile(r"(pass(word)?|pwd|secret|token|key|sig(nature)?|credential|auth)", re.I)
# scheme://userinfo@ : userinfo = user[:password]
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/@'\"<>]+)@")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&](?:[A-Za-z0-9_.\-]*)(?:pass(?:word)?|pwd|secret|token|key|sig(?:nature)?|credential|auth)"
    r"[A-Za-z0-9_.\-]*=)(?P<value>[^&\s'\"]+)",
    re.I,
)
# an absolute path: `/a/b...` not preceded by a URI's `scheme:/` / host part, or the path of a
# sqlite:/// or file:// URI
_URI_PATH = re.compile(r"(?P<prefix>\b(?:sqlite|file):///?)(?P<path>/[^\s'\"<>,;()\]]*)")
_ABS_PATH = re.compile(r"(?<![\w.\-/:@$])(?P<path>/(?:[^\s/'\"<>,;:()\]]+/)+[^\s/'\"<>,;:()\]]*)")


def _mask_userinfo(match: re.Match[str]) -> str:
    user, sep, _ = match.group("userinfo").partition(":")
    return f"{match.group('scheme')}{user}:{MASK}@" if sep else f"{match.group('scheme')}{MASK}@"


def redact_text(text: str | None) -> str | None:
    """`text` with the credentials of every URI in it masked (user kept, password / token replaced)."""
    if not text:
        return text
    out = _USERINFO.sub(_mask_userinfo, text)
    return _SECRET_QUERY.sub(lambda m: f"{m.group('key')}{MASK}", out)


def redact_uri(uri: str | None) -> str | None:
    """One URI without its credentials (None stays None)."""
    if not uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        return redact_text(uri)
    if not parts.scheme or not parts.netloc and not parts.query:
        return redact_text(uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, sep, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if sep else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _SECRET_PARAMS.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _shorten(path: str, roots: Iterable[str]) -> str:
    for root in roots:
        if root and (path == root or path.startswith(root.rstrip("/") + "/")):
            return HOME_TOKEN + path[len(root.rstrip("/")) :]
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return f".../{name}" if name else "..."


def public_text(text: str | None, roots: Iterable[str | Path] = ()) -> str | None:
    """`text` fit for an error body: credentials masked and no absolute server path (paths under one of
    `roots` become `$MARKET_MASTER_HOME/...`, any other one `.../<last part>`)."""
    if not text:
        return text
    known = sorted({str(r) for r in roots if r}, key=len, reverse=True)
    out = redact_text(text)
    out = _URI_PATH.sub(lambda m: m.group("prefix") + _shorten(m.group("path"), known), out)
    return _ABS_PATH.sub(lambda m: _shorten(m.group("path"), known), out)


def home_roots(data_root: str | Path | None) -> tuple[str, ...]:
    """The spellings of the data root that `public_text` replaces by `$MARKET_MASTER_HOME`."""
    if data_root is None:
        return ()
    path = Path(data_root)
    try:
        resolved = path.resolve()
    except OSError:
        resolved = path
    return tuple({str(path), str(resolved)})


class RedactingFilter(logging.Filter):
    """Masks URI credentials in every record's formatted message (attach to the API's loggers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


REDACTING_FILTER = RedactingFilter()


def redacting_logger(name: str) -> logging.Logger:
    """`logging.getLogger(name)` with the redacting filter attached (once)."""
    logger = logging.getLogger(name)
    if REDACTING_FILTER not in logger.filters:
        logger.addFilter(REDACTING_FILTER)
    return logger
