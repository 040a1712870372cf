-- The embedded session store (SPEC §6, §8). Times are unix seconds, UTC.

-- Live sessions. `id` orders them by creation, which is what evict_oldest evicts.
CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id  BLOB    NOT NULL UNIQUE,   -- 16 random bytes
    user_id     INTEGER NOT NULL,
    login_time  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    device      TEXT,
    ip          TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id, id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Sessions that lost their slot to a newer login: they answer session_replaced
-- until expires_at (at least the access TTL), then are forgotten.
CREATE TABLE session_tombstones (
    session_id  BLOB    PRIMARY KEY,
    user_id     INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX tombstones_by_user ON session_tombstones (user_id);

-- One row per change to a user's sessions, written in the same transaction as
-- the change: a running server follows it to pick up what other processes (the
-- command-line tool) did, within its poll interval.
CREATE TABLE session_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL,
    at          INTEGER NOT NULL
);
