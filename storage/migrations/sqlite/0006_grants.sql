-- Version 6: calendars people share. A grant gives one user (or, with no grantee, every
-- signed-in user) a level of access to a calendar: freebusy, read, read-write or admin. A grant
-- to a user starts as an invitation (invited) that becomes active, refused, left or kicked.
CREATE TABLE grants (
    id          INTEGER PRIMARY KEY,
    calendar_id INTEGER NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,
    grantee_id  INTEGER REFERENCES users(id) ON DELETE CASCADE,     -- NULL: every signed-in user
    level       TEXT NOT NULL,
    state       TEXT NOT NULL,
    granted_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX grants_calendar ON grants (calendar_id);
CREATE INDEX grants_grantee ON grants (grantee_id, state);
