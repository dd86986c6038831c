-- Version 5: what one process kept in memory is kept here, for every process and node on the
-- store. An import is run by the process holding its lease (renewed while it runs; once it
-- lapses, another process rolls the import back); a queued import's file waits here, not in
-- one node's folder; failed sign-ins are counted here, so N processes allow no more guesses.
ALTER TABLE imports ADD COLUMN runner TEXT;                              -- who holds the lease
ALTER TABLE imports ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;   -- epoch seconds
CREATE INDEX imports_waiting ON imports (status, id);

CREATE TABLE import_uploads (
    import_id INTEGER PRIMARY KEY REFERENCES imports(id) ON DELETE CASCADE,
    data      BLOB NOT NULL
);

-- One row per failed sign-in and throttle key (account@address, or @address), epoch seconds.
CREATE TABLE login_failures (
    key TEXT NOT NULL,
    at  REAL NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (key, at);
-- When the next slowed attempt of a key may run.
CREATE TABLE login_turns (
    key  TEXT PRIMARY KEY,
    turn REAL NOT NULL
);
