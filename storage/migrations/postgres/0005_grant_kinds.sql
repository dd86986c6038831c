-- Version 5 (SQLite's 8): grants that follow their group's flags (see SQLite's 0008_grant_kinds.sql).
ALTER TABLE grants ADD COLUMN follows_group INTEGER NOT NULL DEFAULT 0;
UPDATE grants SET follows_group = 1
WHERE grantee_id IS NULL AND level = 'read'
  AND calendar_id IN (SELECT id FROM calendars WHERE (props::jsonb ->> 'public') = 'true');
UPDATE grants SET follows_group = 1
WHERE grantee_id IS NOT NULL AND calendar_id IN (
    SELECT id FROM calendars
    WHERE (props::jsonb ? 'membersCanPost' OR props::jsonb ? 'membersCanInvite')
      AND grants.level = CASE WHEN (props::jsonb ->> 'membersCanInvite') = 'true' THEN 'admin'
                              WHEN (props::jsonb ->> 'membersCanPost') = 'true' THEN 'read-write'
                              ELSE 'read' END
);
