"""Credentials, checked the way panda-client uses them, before anything is sent.

panda-client picks its credential from the environment: ``PANDA_AUTH=oidc`` (a token in
``PANDA_AUTH_ID_TOKEN``, ``OIDC_AUTH_TOKEN_FILE`` or ``OIDC_AUTH_ID_TOKEN``, plus
``PANDA_AUTH_VO``), ``PANDA_AUTH=x509_no_grid`` (a proxy and ``PANDA_NICKNAME``), or by
default an x509 proxy (``X509_USER_PROXY``, else ``/tmp/x509up_u<uid>``). A missing or
expired credential is one clear line here, instead of a prompt for a pass phrase or an
HTTP error later. No credential or token ever appears in a message.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import GridError

__all__ = ["Credential", "CredentialError", "check_credential", "nickname_hint", "voms_nickname"]


class CredentialError(GridError):
    """No usable grid credential (missing, unreadable or expired)."""


@dataclass(frozen=True)
class Credential:
    """What was found: the kind, the proxy path (x509 only), the user's nickname, the expiry."""

    kind: str  # "oidc" | "x509"
    nickname: str | None
    expires: float | None
    proxy: str | None = None
    vo: str | None = None
    token: str | None = None  # kept for the idds-client auth dict; never printed

    def __repr__(self) -> str:  # a token must not leak through a repr in a traceback
        return f"Credential(kind={self.kind!r}, nickname={self.nickname!r}, proxy={self.proxy!r}, vo={self.vo!r})"


def _proxy_path(env: Mapping[str, str]) -> str:
    return env.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}"


def _token(env: Mapping[str, str]) -> tuple[str | None, str]:
    if env.get("PANDA_AUTH_ID_TOKEN"):
        return env["PANDA_AUTH_ID_TOKEN"], "PANDA_AUTH_ID_TOKEN"
    if env.get("OIDC_AUTH_TOKEN_FILE"):
        path = Path(env["OIDC_AUTH_TOKEN_FILE"])
        if not path.is_file():
            raise CredentialError(f"OIDC_AUTH_TOKEN_FILE names {str(path)!r}, which does not exist")
        return path.read_text().strip(), "OIDC_AUTH_TOKEN_FILE"
    if env.get("OIDC_AUTH_ID_TOKEN"):
        return env["OIDC_AUTH_ID_TOKEN"], "OIDC_AUTH_ID_TOKEN"
    return None, ""


def _jwt_claims(token: str, source: str) -> dict:
    parts = token.split(".")
    if len(parts) != 3:
        raise CredentialError(f"the token in {source} is not a JWT (expected 3 dot-separated parts, got {len(parts)})")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, json.JSONDecodeError) as exc:
        raise CredentialError(f"the token in {source} cannot be decoded ({type(exc).__name__})") from None
    if not isinstance(claims, dict):
        raise CredentialError(f"the token in {source} has no claims")
    return claims


def _proxy_info(path: str) -> tuple[float, str | None]:
    """(not-after as epoch seconds, CN of the end-entity certificate) of a PEM proxy file."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    data = Path(path).read_bytes()
    start = data.find(b"-----BEGIN CERTIFICATE-----")
    if start < 0:
        raise CredentialError(f"the x509 proxy {path} holds no PEM certificate")
    try:
        cert = x509.load_pem_x509_certificate(data[start:])
    except ValueError as exc:
        raise CredentialError(f"the x509 proxy {path} cannot be read as a certificate ({exc})") from None
    not_after = cert.not_valid_after_utc.timestamp()
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    names = [str(c) for c in cns if not str(c).isdigit() and str(c) != "proxy"]
    return not_after, (names[0] if names else None)


def check_credential(env: Mapping[str, str] | None = None, *, now: float | None = None) -> Credential:
    """The credential panda-client would use, or ``CredentialError`` saying what is missing."""
    env = os.environ if env is None else env
    now = time.time() if now is None else now
    auth = env.get("PANDA_AUTH", "")
    if auth == "oidc":
        vo = env.get("PANDA_AUTH_VO") or env.get("OIDC_AUTH_VO")
        if not vo:
            raise CredentialError("PANDA_AUTH=oidc needs PANDA_AUTH_VO (the virtual organisation, e.g. atlas)")
        token, source = _token(env)
        if not token:
            raise CredentialError(
                "PANDA_AUTH=oidc but no token: set PANDA_AUTH_ID_TOKEN, OIDC_AUTH_TOKEN_FILE or OIDC_AUTH_ID_TOKEN"
            )
        claims = _jwt_claims(token, source)
        exp = claims.get("exp")
        if isinstance(exp, (int, float)) and exp <= now:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(exp))
            raise CredentialError(f"the OIDC token in {source} expired at {when}; get a new one")
        nick = env.get("PANDA_NICKNAME") or claims.get("preferred_username") or claims.get("name")
        return Credential("oidc", str(nick) if nick else None, float(exp) if isinstance(exp, (int, float)) else None,
                          vo=vo, token=token)
    proxy = _proxy_path(env)
    if not os.access(proxy, os.R_OK):
        where = "X509_USER_PROXY" if env.get("X509_USER_PROXY") else "the default location"
        raise CredentialError(
            f"no grid credential: no readable x509 proxy at {proxy} ({where}); run voms-proxy-init -voms atlas, "
            "or use a token with PANDA_AUTH=oidc"
        )
    not_after, cn = _proxy_info(proxy)
    if not_after <= now:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(not_after))
        raise CredentialError(f"the x509 proxy {proxy} expired at {when}; renew it with voms-proxy-init -voms atlas")
    nick = env.get("PANDA_NICKNAME")
    if auth == "x509_no_grid" and not nick:
        raise CredentialError("PANDA_AUTH=x509_no_grid needs PANDA_NICKNAME (your grid nickname)")
    return Credential("x509", nick or None, not_after, proxy=proxy)


def nickname_hint(env: Mapping[str, str] | None = None) -> str | None:
    """The nickname if one can be found without failing (for ``--dry-run``)."""
    env = os.environ if env is None else env
    try:
        return check_credential(env).nickname
    except GridError:
        return env.get("PANDA_NICKNAME") or None


def voms_nickname() -> str:
    """The nickname from the VOMS proxy (as phpo finds it), else a clear error."""
    from pandaclient import PsubUtils

    nick = PsubUtils.getNickname()
    if not nick:
        raise GridError("cannot find your grid nickname; set PANDA_NICKNAME")
    return nick
