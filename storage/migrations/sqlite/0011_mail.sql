-- Version 11: invitations to people outside the server go out by e-mail (iMIP) from a queue any
-- process may send from (one at a time per message, with a lease), each change once (dedupe);
-- each (organizer, attendee, meeting) has a reply token, which their answer by mail must carry.
CREATE TABLE mail_queue (
    id           INTEGER PRIMARY KEY,
    organizer_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    dedupe       TEXT NOT NULL UNIQUE,   -- the recipient and the message: a change is mailed once
    recipient    TEXT NOT NULL,
    message      TEXT NOT NULL,          -- the whole RFC 5322 message
    state        TEXT NOT NULL DEFAULT 'queued',   -- queued, sent, failed
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL DEFAULT 0,        -- epoch seconds
    runner       TEXT,
    lease_until  INTEGER,
    error        TEXT,
    created_at   TEXT NOT NULL,
    sent_at      TEXT
);
CREATE INDEX mail_queue_due ON mail_queue (state, next_attempt);
CREATE TABLE imip_tokens (
    token        TEXT PRIMARY KEY,
    organizer_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    attendee     TEXT NOT NULL,
    uid          TEXT NOT NULL,
    UNIQUE (organizer_id, attendee, uid)
);
