-- Users (SPEC §8). Times are unix seconds, UTC.
CREATE TABLE users (
    user_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    mobile        TEXT    NOT NULL UNIQUE,   -- E.164
    password_hash TEXT    NOT NULL,          -- PHC string
    roles         TEXT    NOT NULL DEFAULT '["viewer"]',  -- JSON list of strings
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    last_login    INTEGER
);
