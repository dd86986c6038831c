-- Version 4: an import lists its first line errors and counts them all.
ALTER TABLE imports ADD COLUMN error_count INTEGER NOT NULL DEFAULT 0;
UPDATE imports SET error_count = json_array_length(errors);
