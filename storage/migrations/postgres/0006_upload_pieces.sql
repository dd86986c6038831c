-- Version 6 (SQLite's 9): a queued import's file is kept in pieces of at most 1 MiB, written
-- and read one piece at a time, so that no process holds a whole upload in memory. A file
-- waiting from before is cut up here.
CREATE TABLE import_upload_pieces (
    import_id BIGINT NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    piece     INTEGER NOT NULL,   -- its place in the file, from 0
    data      BYTEA NOT NULL,
    PRIMARY KEY (import_id, piece)
);
INSERT INTO import_upload_pieces (import_id, piece, data)
WITH RECURSIVE pieces(import_id, piece, data) AS (
    SELECT import_id, 0, substring(data FROM 1 FOR 1048576) FROM import_uploads
    UNION ALL
    SELECT p.import_id, p.piece + 1, substring(u.data FROM (p.piece + 1) * 1048576 + 1 FOR 1048576)
    FROM pieces AS p JOIN import_uploads AS u ON u.import_id = p.import_id
    WHERE length(u.data) > (p.piece + 1) * 1048576
)
SELECT import_id, piece, data FROM pieces;
DROP TABLE import_uploads;
