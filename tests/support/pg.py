"""The tests' private PostgreSQL: the product's own (:mod:`callflow.lab._postgres`), a throw-away cluster in
a temporary directory on a free loopback port, stopped and removed at the end. A test makes one database
per test (:meth:`PrivatePostgres.create_database`) and gets a ``postgresql://`` URL with no password."""

from callflow.lab._postgres import (
    PostgresUnavailable,
    PrivatePostgres,
    find_bin_dir,
    remove_private_postgres,
    start_private_postgres,
)

__all__ = ["PostgresUnavailable", "PrivatePostgres", "find_bin_dir", "remove_private_postgres",
           "start_private_postgres"]
