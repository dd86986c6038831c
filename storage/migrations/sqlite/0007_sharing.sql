-- Version 7: sharing at every door. An accepted grant puts the calendar in the grantee's home
-- under a name of its own (slug, unique among the grantee's grants; the services keep it apart
-- from their calendars' names) with the grantee's own settings (props: colour, display name).
-- Every object and every change records who made it. A calendar may have a public feed: a
-- secret address, kept as the SHA-256 of its token, giving full details or busy times only.
ALTER TABLE grants ADD COLUMN slug TEXT;
ALTER TABLE grants ADD COLUMN props TEXT NOT NULL DEFAULT '{}';
CREATE UNIQUE INDEX grants_slug ON grants (grantee_id, slug);
ALTER TABLE objects ADD COLUMN modified_by INTEGER REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE changes ADD COLUMN changed_by INTEGER REFERENCES users(id) ON DELETE SET NULL;
CREATE TABLE feeds (
    calendar_id INTEGER PRIMARY KEY REFERENCES calendars(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    busy_only   INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
