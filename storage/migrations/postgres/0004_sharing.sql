-- Version 4 (SQLite's 7): sharing at every door (see SQLite's 0007_sharing.sql).
ALTER TABLE grants ADD COLUMN slug TEXT COLLATE "C";
ALTER TABLE grants ADD COLUMN props TEXT NOT NULL DEFAULT '{}';
CREATE UNIQUE INDEX grants_slug ON grants (grantee_id, slug);
ALTER TABLE objects ADD COLUMN modified_by BIGINT REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE changes ADD COLUMN changed_by BIGINT REFERENCES users(id) ON DELETE SET NULL;
CREATE TABLE feeds (
    calendar_id BIGINT PRIMARY KEY REFERENCES calendars(id) ON DELETE CASCADE,
    token_hash  TEXT COLLATE "C" NOT NULL UNIQUE,
    busy_only   INTEGER NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL
);
