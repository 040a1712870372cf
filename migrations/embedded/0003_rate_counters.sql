-- Rate-limit counters (SPEC §9): one fixed window per key, shared by every process
-- on this data directory.
CREATE TABLE rate_counters (
    key         TEXT    PRIMARY KEY,
    count       INTEGER NOT NULL,
    window_end  INTEGER NOT NULL
) WITHOUT ROWID;
