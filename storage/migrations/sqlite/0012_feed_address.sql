-- Version 12: a public feed's secret address is kept, so its owner can see and copy it again
-- (its hash alone protected nothing: the calendar's events are in the same store). Feeds made
-- before have none until their owner makes a new address.
ALTER TABLE feeds ADD COLUMN token TEXT;
