-- Refresh tokens (SPEC §4): the digest of the current token, its generation, and
-- when it was last rotated (for the reuse grace window). Never the token itself.
ALTER TABLE sessions ADD COLUMN refresh_digest BLOB NOT NULL DEFAULT x'';
ALTER TABLE sessions ADD COLUMN refresh_generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN rotated_at INTEGER NOT NULL DEFAULT 0;
