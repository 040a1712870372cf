-- Streams (SPEC §11). A publish key is kept only as a keyed digest.
CREATE TABLE streams (
    name        TEXT    PRIMARY KEY,      -- [a-z0-9][a-z0-9_-]{0,63}
    owner_id    INTEGER NOT NULL REFERENCES users (user_id),
    access      TEXT    NOT NULL DEFAULT 'login',   -- login | public
    key_digest  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX streams_by_owner ON streams (owner_id, created_at);
-- The key-as-name form (nginx-rtmp) finds a stream by its key's digest.
CREATE INDEX streams_by_key ON streams (key_digest);
