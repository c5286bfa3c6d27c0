"""Credentials, as panda-client uses them: a missing or expired one is one clear line before
anything is sent, and no credential or token ever appears in the output."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpogrid.client.grid.auth import CredentialError, check_credential
from hpogrid.gridsim.server import make_test_proxy

from .conftest import SPACE_1, hpogrid, make_project, sim_state


def jwt(claims: dict) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return f"{enc({'alg': 'RS256', 'typ': 'JWT'})}.{enc(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


def test_x509_proxy_found_and_checked(tmp_path: Path):
    proxy = make_test_proxy(tmp_path / "x509up", cn="Jane Doe")
    cred = check_credential({"X509_USER_PROXY": str(proxy), "PANDA_NICKNAME": "jdoe"})
    assert cred.kind == "x509" and cred.nickname == "jdoe" and cred.expires > time.time()
    with pytest.raises(CredentialError, match="no readable x509 proxy at /nope"):
        check_credential({"X509_USER_PROXY": "/nope"})
    old = make_test_proxy(tmp_path / "old", expired=True)
    with pytest.raises(CredentialError, match="expired at .* renew it"):
        check_credential({"X509_USER_PROXY": str(old)})
    with pytest.raises(CredentialError, match="needs PANDA_NICKNAME"):
        check_credential({"X509_USER_PROXY": str(proxy), "PANDA_AUTH": "x509_no_grid"})
    (tmp_path / "junk").write_text("not a certificate")
    with pytest.raises(CredentialError, match="holds no PEM certificate"):
        check_credential({"X509_USER_PROXY": str(tmp_path / "junk")})


def test_oidc_token_checked_and_never_shown():
    token = jwt({"preferred_username": "jdoe", "exp": time.time() + 3600})
    cred = check_credential({"PANDA_AUTH": "oidc", "PANDA_AUTH_VO": "atlas", "PANDA_AUTH_ID_TOKEN": token})
    assert cred.kind == "oidc" and cred.nickname == "jdoe" and token not in repr(cred)
    with pytest.raises(CredentialError, match="needs PANDA_AUTH_VO"):
        check_credential({"PANDA_AUTH": "oidc", "PANDA_AUTH_ID_TOKEN": token})
    with pytest.raises(CredentialError, match="no token"):
        check_credential({"PANDA_AUTH": "oidc", "PANDA_AUTH_VO": "atlas"})
    expired = jwt({"preferred_username": "jdoe", "exp": time.time() - 60})
    with pytest.raises(CredentialError, match="expired") as info:
        check_credential({"PANDA_AUTH": "oidc", "PANDA_AUTH_VO": "atlas", "PANDA_AUTH_ID_TOKEN": expired})
    assert expired not in str(info.value)
    with pytest.raises(CredentialError, match="not a JWT"):
        check_credential({"PANDA_AUTH": "oidc", "PANDA_AUTH_VO": "atlas", "PANDA_AUTH_ID_TOKEN": "secret-abc"})


@pytest.mark.parametrize("case", ["missing_proxy", "expired_proxy", "expired_token"])
def test_cli_refuses_before_sending(case: str, grid_env: dict[str, str], gridsim: dict, tmp_path: Path):
    env = dict(grid_env)
    make_project(env, f"auth_{case}", script="simple_objective.py", model="simple_objective", space=SPACE_1)
    secret = None
    if case.endswith("_proxy"):  # a grid user of x509 (the sandbox's default is its own OIDC token)
        for key in ("OIDC_AUTH_TOKEN_FILE", "PANDA_AUTH_VO"):
            env.pop(key, None)
        env["PANDA_AUTH"] = "x509_no_grid"
    if case == "missing_proxy":
        env["X509_USER_PROXY"] = str(tmp_path / "no-proxy-here")
    elif case == "expired_proxy":
        env["X509_USER_PROXY"] = str(make_test_proxy(tmp_path / "expired", expired=True))
    else:
        secret = jwt({"preferred_username": "tester", "exp": time.time() - 5})
        env.update(PANDA_AUTH="oidc", PANDA_AUTH_VO="atlas", PANDA_AUTH_ID_TOKEN=secret)
    code = (f"from hpogrid.client import campaigns; print(campaigns.new('auth_{case}', 'panda', remote_id='500001', "
            "status='running').campaign()['id'])")
    cid = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    before = len(sim_state(gridsim)["tasks"])
    for args in (["submit_idds", f"auth_{case}", "--backend", "panda"], ["run", f"auth_{case}", "--n_jobs", "1"],
                 ["sites"], ["tasks", "kill", cid], ["tasks", "retry", cid]):
        result = hpogrid(*args, env=env, check=False)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("hpogrid: error: "), result.stderr
        assert ("expired" if "expired" in case else "no grid credential") in lines[0]
        if secret:
            assert secret not in result.stdout + result.stderr
    assert len(sim_state(gridsim)["tasks"]) == before  # nothing was sent


def test_oidc_user_reaches_panda_and_idds_without_the_token_showing(grid_env: dict[str, str]):
    """panda-client sends the token as a bearer token, idds-client in its header; neither is printed."""
    token = jwt({"preferred_username": "tester", "name": "Test User", "exp": time.time() + 3600})
    env = {k: v for k, v in grid_env.items() if k not in ("X509_USER_PROXY", "PANDA_NICKNAME")}
    env.update(PANDA_AUTH="oidc", PANDA_AUTH_VO="atlas", PANDA_AUTH_ID_TOKEN=token)
    sites = hpogrid("sites", "--json", env=env)
    assert json.loads(sites.stdout) and token not in sites.stdout + sites.stderr
    code = ("from hpogrid.client.grid import auth, idds; "
            "print(idds.hyperparameters(987654, auth.check_credential()))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
    assert token not in out.stdout + out.stderr
