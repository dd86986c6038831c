-- Version 11: accounts from an LDAP directory ([auth] backend = ldap). A user made at their first
-- sign-in (or found for sharing) is the directory's: its password is the directory's to check,
-- and its display name follows the directory.
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
ALTER TABLE users ADD COLUMN display_name TEXT;
