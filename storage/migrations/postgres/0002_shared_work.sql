-- Version 2 (SQLite's 5): imports are leased by the process running them, a queued import's
-- file waits in the store, failed sign-ins are counted in the store.
ALTER TABLE imports ADD COLUMN runner TEXT;
ALTER TABLE imports ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX imports_waiting ON imports (status, id);

CREATE TABLE import_uploads (
    import_id BIGINT PRIMARY KEY REFERENCES imports(id) ON DELETE CASCADE,
    data      BYTEA NOT NULL
);

CREATE TABLE login_failures (
    key TEXT COLLATE "C" NOT NULL,
    at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (key, at);
CREATE TABLE login_turns (
    key  TEXT COLLATE "C" PRIMARY KEY,
    turn DOUBLE PRECISION NOT NULL
);
