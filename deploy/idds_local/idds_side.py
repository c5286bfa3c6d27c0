"""The part of the local iDDS that runs with the iDDS environment's python (not hpogrid's).

This file is executed by path with the interpreter of the separate iDDS venv; it imports only the
standard library, iDDS 2.6.21 and pgserver, never ``hpogrid``. Two commands:

``idds_side.py database PGDATA``
    starts (or reuses) PostgreSQL from ``pgserver`` in the folder PGDATA, creates the ``idds``
    database and the ``doma_idds`` schema, iDDS's tables, and prints ``POSTMASTER <pid>``.
``idds_side.py rest PORT``
    serves iDDS's own REST app (``idds.rest.v1.app.create_app``) under ``/idds`` on 127.0.0.1:PORT
    over plain HTTP, setting the client DN that Apache's mod_ssl would set, and prints ``READY``.

Why each piece is needed is written down in docs/IDDS-LOCAL.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DATABASE = "idds"
SCHEMA = "doma_idds"  # iDDS sets search_path to [database] schema; it must exist before the tables
TEST_DN = "/DC=local/OU=Users/CN=hpogrid"
TEST_CERT = "-----BEGIN CERTIFICATE-----\nloopback test\n-----END CERTIFICATE-----"


def database(pgdata: Path) -> int:
    import pgserver
    import psycopg2

    server = pgserver.get_server(pgdata, cleanup_mode=None)  # None: keep running after we exit
    if "1" not in server.psql(f"select 1 from pg_database where datname = '{DATABASE}';"):
        server.psql(f"create database {DATABASE};")
    # pgserver listens on a unix socket only; its folder is in the URI it reports
    uri = server.get_uri(DATABASE)
    connection = psycopg2.connect(uri)
    connection.autocommit = True
    connection.cursor().execute(f"create schema if not exists {SCHEMA}")
    connection.close()
    print(f"URI {uri}", flush=True)
    print(f"POSTMASTER {server.get_pid()}", flush=True)
    return 0


def tables() -> int:
    """iDDS's tables in the database that ``$IDDS_CONFIG`` names (created once, then left alone)."""
    from idds.orm.base import models
    from idds.orm.base.session import get_engine

    models.register_models(get_engine())  # the tables, without alembic's bookkeeping
    return 0


def _legacy_hpo_as_workflowv2(scope, name, workload_id, request_metadata):
    """Compatibility shim for PanDA-style requests (``request_type`` HyperParameterOpt, as JEDI sends).

    iDDS 2.6.21 turns them into a v1 ``idds.atlas.workflow.atlashpowork.ATLASHPOWork``
    (``idds/rest/v1/utils.py`` line 71), which the 2.6.x clerk no longer carries through. This builds
    the same work from the same fields with the workflowv2 classes, sets ``task_name`` (workflowv2
    orders works by it) and ``es = True`` (see docs/IDDS-LOCAL.md: without it the 2.6.21 poller never
    sees the points of a round). Requests that already hold a workflow are not touched by it.
    """
    from idds.atlas.workflowv2.atlashpowork import ATLASHPOWork
    from idds.workflowv2.workflow import Workflow

    meta = request_metadata
    work = ATLASHPOWork(executable=meta.get("executable"), arguments=meta.get("arguments"),
                        parameters=meta.get("parameters"), setup=None, exec_type="local",
                        sandbox=meta.get("sandbox"), method=meta.get("method"),
                        container_workdir=meta.get("workdir"), output_json=meta.get("output_json"),
                        opt_space=meta.get("opt_space"), workload_id=workload_id,
                        initial_points=meta.get("initial_points"), max_points=meta.get("max_points"),
                        num_points_per_iteration=meta.get("num_points_per_iteration", 10))
    work.task_name = f"hpo.{workload_id}"
    work.es = True
    workflow = Workflow()
    workflow.set_workload_id(workload_id)
    workflow.add_work(work)
    return workflow


def rest(port: int) -> int:
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.serving import make_server

    import idds.rest.v1.utils as rest_utils
    from idds.rest.v1.app import create_app

    rest_utils.convert_hpo_request_metadata_to_workflow = _legacy_hpo_as_workflowv2
    app = create_app()

    def with_client_dn(environ, start_response):
        environ.setdefault("SSL_CLIENT_S_DN", TEST_DN)
        environ.setdefault("SSL_CLIENT_CERT", TEST_CERT)
        return app(environ, start_response)

    def not_found(environ, start_response):
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]

    server = make_server("127.0.0.1", port, DispatcherMiddleware(not_found, {"/idds": with_client_dn}),
                         threaded=True)
    print(f"READY {port}", flush=True)
    server.serve_forever()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "database":
        return database(Path(argv[1]))
    if argv == ["tables"]:
        return tables()
    if len(argv) == 2 and argv[0] == "rest":
        return rest(int(argv[1]))
    sys.stderr.write("usage: idds_side.py database PGDATA | tables | rest PORT\n")
    return 2


if __name__ == "__main__":
    os.environ.pop("IDDS_CLIENT_MODE", None)
    sys.exit(main(sys.argv[1:]))
