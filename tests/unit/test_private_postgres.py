"""The private PostgreSQL fixture itself: a cluster of our own on loopback that a test can stop and start."""

from __future__ import annotations

from tests.support.pg import PrivatePostgres


def test_private_cluster_runs_on_loopback_and_survives_a_restart(private_postgres: PrivatePostgres,
                                                                 postgres_url: str) -> None:
    dbname = postgres_url.rsplit("/", 1)[-1]
    private_postgres.psql("CREATE TABLE t (x integer); INSERT INTO t VALUES (112)", dbname)
    assert private_postgres.psql("SHOW listen_addresses") == "127.0.0.1"
    assert postgres_url.startswith(f"postgresql://{private_postgres.superuser}@127.0.0.1:{private_postgres.port}/")
    private_postgres.stop()
    private_postgres.start()
    assert private_postgres.psql("SELECT x FROM t", dbname) == "112"
