-- Version 13: where an operator opens sign-up by invitation ([auth] signup = invitation), each
-- invitation is a code (kept hashed) that makes one account before it expires.
CREATE TABLE signup_invitations (
    id           INTEGER PRIMARY KEY,
    code_hash    TEXT NOT NULL UNIQUE,
    email        TEXT,                 -- the address it was made for (the account's, unless changed)
    created_at   TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,     -- epoch seconds
    used_by      INTEGER               -- the account it made (0 while one is being made)
);
