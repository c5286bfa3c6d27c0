"""The real iDDS REST app (idds-server 2.6.21) on loopback, as a contract oracle for the sandbox.

Run with the interpreter of a separate environment that has ``idds-server==2.6.21 idds-prompt
werkzeug`` (``tests/grid/test_grid_conformance.py`` creates it): SQLite with a SQL ``md5()``
function registered on each connection, the app under ``/idds``, and a WSGI wrapper that sets
``SSL_CLIENT_S_DN`` (PROTOCOL.md §6). Prints ``READY <port>`` when it serves.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dir", required=True)
    args = p.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)

    from werkzeug.serving import make_server

    # the port first (the config names it), then the configuration iDDS reads at import
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    sock.close()
    (folder / "idds.cfg").write_text(
        "[common]\nloglevel = WARNING\nlogdir = {d}\n\n[database]\ndefault = sqlite:///{d}/idds.db\n"
        "pool_size = 5\npool_recycle = 3600\necho = 0\npool_reset_on_return = rollback\n\n"
        "[rest]\nhost = http://127.0.0.1:{p}/idds\ncacher_dir = {d}/cacher\n".format(d=folder, p=port))
    (folder / "auth.cfg").write_text("[common]\nallow_vos = atlas,local\n\n[Users]\nallow_users = /DC=local\n"
                                     "super_users = gridsim-service\n")
    os.environ["IDDS_CONFIG"] = str(folder / "idds.cfg")
    os.environ["IDDS_AUTH_CONFIG"] = str(folder / "auth.cfg")
    os.environ.pop("IDDS_CLIENT_MODE", None)

    import sqlalchemy
    from sqlalchemy import event

    @event.listens_for(sqlalchemy.engine.Engine, "connect")
    def _md5(dbapi_connection, _record):  # iDDS indexes md5(name); SQLite has no md5()
        if hasattr(dbapi_connection, "create_function"):
            dbapi_connection.create_function(
                "md5", 1, lambda s: None if s is None else hashlib.md5(str(s).encode()).hexdigest(),
                deterministic=True)

    from idds.orm.base import models, session

    models.register_models(session.get_engine(echo=False))  # the tables, without alembic's bookkeeping
    from idds.rest.v1.app import create_app
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    app = create_app()

    def with_dn(environ, start_response):
        environ["SSL_CLIENT_S_DN"] = "/DC=local/CN=testuser"
        environ["SSL_CLIENT_CERT"] = "-----BEGIN CERTIFICATE----- (loopback test) -----END CERTIFICATE-----"
        return app(environ, start_response)

    def not_found(environ, start_response):
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]

    server = make_server("127.0.0.1", port, DispatcherMiddleware(not_found, {"/idds": with_dn}), threaded=True)
    print(f"READY {port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
