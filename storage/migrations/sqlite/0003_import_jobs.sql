-- Version 3: imports run as jobs that are queued, written batch by batch, and rolled back
-- when they fail or are interrupted.
ALTER TABLE imports ADD COLUMN message TEXT;                        -- why a failed import failed
ALTER TABLE imports ADD COLUMN total INTEGER NOT NULL DEFAULT 0;    -- objects it is writing
CREATE INDEX imports_status ON imports (status);
