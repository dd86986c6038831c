-- Almanac store, version 1: users, calendars, objects, changes, tokens, sessions, imports.
-- Times are ISO 8601 UTC text (2019-09-15T20:44:02.123Z); index bounds are epoch seconds.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    email         TEXT UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE calendars (
    id            INTEGER PRIMARY KEY,
    uuid          TEXT NOT NULL UNIQUE,
    owner_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    slug          TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT,
    color         TEXT,
    timezone      TEXT,
    components    TEXT NOT NULL DEFAULT 'VEVENT,VTODO,VJOURNAL',
    sync_revision INTEGER NOT NULL DEFAULT 0,
    is_default    INTEGER NOT NULL DEFAULT 0,
    props         TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (owner_id, slug)
);
CREATE INDEX calendars_owner_name ON calendars (owner_id, name);

-- One row per calendar object resource: a UID with its overridden instances.
CREATE TABLE objects (
    id          INTEGER PRIMARY KEY,
    calendar_id INTEGER NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,
    href        TEXT NOT NULL,
    uid         TEXT NOT NULL,
    etag        TEXT NOT NULL,
    component   TEXT NOT NULL,
    ical        TEXT NOT NULL,
    start_utc   INTEGER,            -- bounds of every instance; NULL: unbounded in the past
    end_utc     INTEGER,            -- NULL: unbounded in the future (open-ended recurrence)
    recurring   INTEGER NOT NULL DEFAULT 0,
    summary     TEXT NOT NULL DEFAULT '',
    class       TEXT,
    import_id   INTEGER REFERENCES imports(id) ON DELETE SET NULL,
    span_count  INTEGER NOT NULL DEFAULT 0,   -- rows in spans: ids object_id * 2^20 + 0..n-1
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    UNIQUE (calendar_id, href),
    UNIQUE (calendar_id, uid)
);

-- The time-range index: an R*Tree over time holding one span per object, or one per
-- instance of a recurring object up to a horizon. t0/t1 are rounded outward (32-bit floats);
-- s/e are the exact epoch seconds. exact = 0 marks spans that only bound the object
-- (floating times, the open tail of a series): such hits are checked on the text.
-- (One time dimension only: with the calendar as a second dimension, SQLite's R*Tree
-- degraded 300-fold on a single large calendar filled in random order.)
CREATE VIRTUAL TABLE spans USING rtree (
    id, t0, t1,
    +calendar_id INTEGER, +object_id INTEGER, +s INTEGER, +e INTEGER, +exact INTEGER
);

-- Latest change per resource, for sync-collection, getctag and WCAP fetch-by-lastmod.
CREATE TABLE changes (
    calendar_id INTEGER NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,
    href        TEXT NOT NULL,
    uid         TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0,
    changed_at  TEXT NOT NULL,
    PRIMARY KEY (calendar_id, href)
);
CREATE INDEX changes_revision ON changes (calendar_id, revision);

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,   -- SHA-256 of the token: the token itself is never stored
    created_at   TEXT NOT NULL
);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,          -- 'wcap' or 'web'
    session_hash TEXT NOT NULL UNIQUE,   -- SHA-256 of the session id
    created_at   TEXT NOT NULL,
    expires_at   INTEGER NOT NULL        -- epoch seconds; pushed forward on use
);

CREATE TABLE imports (
    id                INTEGER PRIMARY KEY,
    user_id           INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    calendar_id       INTEGER REFERENCES calendars(id) ON DELETE SET NULL,
    door              TEXT NOT NULL,     -- rest, wcap, web, cli
    format            TEXT,
    filename          TEXT,
    options           TEXT NOT NULL DEFAULT '{}',
    status            TEXT NOT NULL,     -- queued, in_progress, complete, failed, undone
    progress          INTEGER NOT NULL DEFAULT 0,
    created           INTEGER NOT NULL DEFAULT 0,
    updated           INTEGER NOT NULL DEFAULT 0,
    unchanged         INTEGER NOT NULL DEFAULT 0,
    discarded         INTEGER NOT NULL DEFAULT 0,
    calendars_created TEXT NOT NULL DEFAULT '[]',
    errors            TEXT NOT NULL DEFAULT '[]',
    warnings          TEXT NOT NULL DEFAULT '[]',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    finished_at       TEXT
);
CREATE INDEX imports_user ON imports (user_id, created_at);

-- What an import wrote, with the text it replaced, so that it can be undone.
CREATE TABLE import_items (
    import_id     INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    calendar_id   INTEGER NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,
    href          TEXT NOT NULL,
    uid           TEXT NOT NULL,
    action        TEXT NOT NULL,         -- created or updated
    previous_ical TEXT,
    previous_etag TEXT,
    PRIMARY KEY (import_id, calendar_id, href)
);
