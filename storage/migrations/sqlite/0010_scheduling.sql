-- Version 10: meetings (RFC 6638). A scheduling object resource's Schedule-Tag (it changes when
-- the object changes in substance, not when scheduling only records an attendee's answer); what
-- kind of calendar user a user is (a room or a resource answers invitations on its own); and
-- each user's scheduling inbox: the iTIP messages delivered to them (the same UID may come
-- many times), expired after a while.
ALTER TABLE objects ADD COLUMN schedule_tag TEXT;
ALTER TABLE users ADD COLUMN cutype TEXT NOT NULL DEFAULT 'INDIVIDUAL';
CREATE TABLE schedule_inbox (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,   -- its href in the inbox collection
    uid        TEXT NOT NULL,
    method     TEXT NOT NULL,   -- REQUEST, REPLY, CANCEL
    ical       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX schedule_inbox_created ON schedule_inbox (created_at);
