-- Version 2: per-user preferences (WCAP get/set_userprefs, subscribed calendars), as JSON.
ALTER TABLE users ADD COLUMN prefs TEXT NOT NULL DEFAULT '{}';
CREATE INDEX changes_time ON changes (calendar_id, deleted, changed_at);
CREATE INDEX objects_modified ON objects (calendar_id, modified_at);
