-- Version 8: a grant given to a member of a group (REST's invitees, the public flag) follows the
-- group's flags (membersCanPost, membersCanInvite, public); one given at a level of its own (the
-- sharing page, Apple's sharing, WCAP's access control entries) keeps that level whatever the
-- flags. Of the grants made before, those that can only have come from the flags follow them:
-- the grant to everyone at read of a public group, and on a group whose member flags were set,
-- the grants at exactly the level those flags give. Every other one keeps its level, so no
-- change of a flag gives anyone more than was chosen for them.
ALTER TABLE grants ADD COLUMN follows_group INTEGER NOT NULL DEFAULT 0;
UPDATE grants SET follows_group = 1
WHERE grantee_id IS NULL AND level = 'read'
  AND calendar_id IN (SELECT id FROM calendars WHERE json_extract(props, '$.public') = 1);
UPDATE grants SET follows_group = 1
WHERE grantee_id IS NOT NULL AND calendar_id IN (
    SELECT id FROM calendars
    WHERE (json_extract(props, '$.membersCanPost') IS NOT NULL OR json_extract(props, '$.membersCanInvite') IS NOT NULL)
      AND grants.level = CASE WHEN json_extract(props, '$.membersCanInvite') = 1 THEN 'admin'
                              WHEN json_extract(props, '$.membersCanPost') = 1 THEN 'read-write'
                              ELSE 'read' END
);
