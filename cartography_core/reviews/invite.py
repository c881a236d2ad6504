"""Signed invite links: link-based access control for annotators, not user accounts.

With a secret configured (``CARTOGRAPHY_INVITE_SECRET``, or a file named by ``CARTOGRAPHY_INVITE_SECRET_FILE``
or ``--secret-file``), the dashboard accepts verdicts only from a link whose ``token`` is

    token = HMAC-SHA256(secret, "cartography-invite\\n" + name + "\\n" + scope), hex, first 32 characters

where ``scope`` is empty (any view) or the view the invite is limited to (:func:`scope_of`: the view's
parameters, sorted, URL-encoded), carried in the link's ``scope`` parameter; the dashboard then accepts
verdicts only while it shows exactly that view. Whoever holds a link can act as the name in it: send links
privately; anyone with the secret can mint links.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlencode

from ..errors import LogError

TOKEN_CHARS = 32
NOT_SCOPE = frozenset({"reviewer", "token", "scope", "page", "example", "review_filter"})
"""URL parameters that are not part of a view: who, the signature, and where in the queue one is."""


def load_secret(secret_file: str | Path | None = None) -> bytes | None:
    """The invite secret: ``secret_file``, else ``CARTOGRAPHY_INVITE_SECRET_FILE``, else
    ``CARTOGRAPHY_INVITE_SECRET``; None when none is set (links are then not checked)."""
    path = secret_file or os.environ.get("CARTOGRAPHY_INVITE_SECRET_FILE")
    if path:
        try:
            secret = Path(path).read_bytes().strip()
        except OSError as exc:
            raise LogError(f"{path}: cannot read the invite secret ({exc.strerror})") from exc
        if not secret:
            raise LogError(f"{path}: the invite secret file is empty")
        return secret
    value = os.environ.get("CARTOGRAPHY_INVITE_SECRET", "").strip()
    return value.encode() if value else None


def scope_of(params: Iterable[tuple[str, str]]) -> str:
    """The view an invite is for: its (key, value) pairs without :data:`NOT_SCOPE`, sorted, URL-encoded."""
    return urlencode(sorted((k, v) for k, v in params if k not in NOT_SCOPE))


def sign(secret: bytes, name: str, scope: str = "") -> str:
    """The token of ``name`` for ``scope`` (module docstring)."""
    message = f"cartography-invite\n{name}\n{scope}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:TOKEN_CHARS]


def token_ok(secret: bytes, name: str, token: str | None, scope: str = "") -> bool:
    """Whether ``token`` is ``name``'s invite for ``scope`` (constant-time comparison). The caller checks
    that the view shown is the one ``scope`` names."""
    return hmac.compare_digest(sign(secret, name, scope or ""), token or "")


def invite_link(base_url: str, secret: bytes, name: str, view: Iterable[tuple[str, str]] = ()) -> str:
    """A review link for ``name``: ``view``'s parameters and, when there are any, ``scope`` (the view the
    invite is limited to), ``page=review``, the name and its token."""
    view = [(k, v) for k, v in view if k not in NOT_SCOPE]
    scope = scope_of(view) if view else ""
    query = [*view, *([("scope", scope)] if scope else []), ("page", "review"), ("reviewer", name)]
    return base_url.split("?")[0] + "?" + urlencode([*query, ("token", sign(secret, name, scope))])
