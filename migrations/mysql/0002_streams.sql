-- Streams (SPEC §11). A publish key is kept only as a keyed digest.
CREATE TABLE streams (
    name        VARCHAR(64) NOT NULL PRIMARY KEY,   -- [a-z0-9][a-z0-9_-]{0,63}
    owner_id    BIGINT      NOT NULL,
    access      VARCHAR(8)  NOT NULL DEFAULT 'login',   -- login | public
    key_digest  BINARY(32)  NOT NULL,
    created_at  BIGINT      NOT NULL,
    KEY streams_by_owner (owner_id, created_at),
    -- The key-as-name form (nginx-rtmp) finds a stream by its key's digest.
    KEY streams_by_key (key_digest),
    CONSTRAINT streams_owner FOREIGN KEY (owner_id) REFERENCES users (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
