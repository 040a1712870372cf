-- Users (SPEC §8), on MySQL 8 or MariaDB 10.6 and later. Times are unix seconds, UTC.
-- Ids are assigned by default but may be given (an import keeps the original ids;
-- InnoDB moves its counter past the largest id inserted). utf8mb4 with a binary
-- collation: mobile numbers, hashes and roles compare case and accent included
-- (trailing spaces aside, which none of them has).
CREATE TABLE users (
    user_id       BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    mobile        VARCHAR(32)   NOT NULL,   -- E.164
    password_hash VARCHAR(1024) NOT NULL,   -- PHC string, or a legacy hash until the next login
    roles         TEXT          NOT NULL,   -- JSON list of strings
    disabled      BOOLEAN       NOT NULL DEFAULT FALSE,
    created_at    BIGINT        NOT NULL,
    last_login    BIGINT        NULL,
    UNIQUE KEY users_by_mobile (mobile)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
