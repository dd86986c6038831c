-- Version 9: a queued import's file is kept in pieces of at most 1 MiB, written and read one
-- piece at a time, so that no process holds a whole upload in memory (an upload was one blob:
-- written, and read back by the worker, whole). A file waiting from before is cut up here.
CREATE TABLE import_upload_pieces (
    import_id INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    piece     INTEGER NOT NULL,   -- its place in the file, from 0
    data      BLOB NOT NULL,
    PRIMARY KEY (import_id, piece)
);
WITH RECURSIVE pieces(import_id, piece, data) AS (
    SELECT import_id, 0, coalesce(substr(data, 1, 1048576), x'') FROM import_uploads  -- '' for an empty file
    UNION ALL
    SELECT p.import_id, p.piece + 1, substr(u.data, (p.piece + 1) * 1048576 + 1, 1048576)
    FROM pieces AS p JOIN import_uploads AS u ON u.import_id = p.import_id
    WHERE length(u.data) > (p.piece + 1) * 1048576
)
INSERT INTO import_upload_pieces (import_id, piece, data) SELECT import_id, piece, data FROM pieces;
DROP TABLE import_uploads;
