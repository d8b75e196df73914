"""The console's tables in the shared store (prefix ``console_``)."""

from __future__ import annotations

from datetime import UTC, datetime

from callflow.store import Schema

CONSOLE_SCHEMA = Schema(
    name="console",
    steps=(
        """
        CREATE TABLE console_users (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            role TEXT NOT NULL CHECK (role IN ('operator', 'supervisor', 'admin')),
            password_hash TEXT NOT NULL,
            operator_id TEXT,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE console_sessions (
            token_hash TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES console_users(id),
            csrf_token TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            address TEXT NOT NULL
        );
        CREATE INDEX console_sessions_expiry ON console_sessions(expires_at);
        CREATE TABLE console_audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            address TEXT NOT NULL DEFAULT '',
            outcome TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX console_audit_at ON console_audit(at);
        """,
        # 2: agency accounts, bound to one agency of the registry. SQLite cannot widen a CHECK in place:
        # the table is rebuilt (sessions end: their users log in again).
        """
        DELETE FROM console_sessions;
        CREATE TABLE console_users_v2 (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            role TEXT NOT NULL CHECK (role IN ('operator', 'supervisor', 'admin', 'agency')),
            password_hash TEXT NOT NULL,
            operator_id TEXT,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            agency_id TEXT,
            CHECK ((role = 'agency') = (agency_id IS NOT NULL))
        );
        INSERT INTO console_users_v2 (id, name, role, password_hash, operator_id, disabled, created_at)
            SELECT id, name, role, password_hash, operator_id, disabled, created_at FROM console_users;
        DROP TABLE console_users;
        ALTER TABLE console_users_v2 RENAME TO console_users;
        """,
    ),
    # PostgreSQL widens the CHECK in place (dropping the table would take the sessions' foreign key)
    postgresql={1: """
        DELETE FROM console_sessions;
        ALTER TABLE console_users DROP CONSTRAINT console_users_role_check;
        ALTER TABLE console_users ADD CONSTRAINT console_users_role_check
            CHECK (role IN ('operator', 'supervisor', 'admin', 'agency'));
        ALTER TABLE console_users ADD COLUMN agency_id TEXT;
        ALTER TABLE console_users ADD CHECK ((role = 'agency') = (agency_id IS NOT NULL));
        """},
)


def iso(at: datetime) -> str:
    """Fixed-width UTC text (always microseconds), so stored instants sort and compare as strings."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: the console stores UTC-aware instants only")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
