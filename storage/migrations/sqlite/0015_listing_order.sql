-- Version 15: listings are read in pages (PROPFIND Depth 1 by object id, sync-collection by
-- revision and href), and each page was found by a scan of the whole calendar and a sort: these
-- indexes hold them in that order, so a page is a range read.
CREATE INDEX objects_listing ON objects (calendar_id, id);
DROP INDEX changes_revision;
CREATE INDEX changes_revision ON changes (calendar_id, revision, href);
