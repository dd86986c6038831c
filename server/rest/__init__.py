"""The Timeslot-style JSON door (/v1): ``door`` (accounts, groups, slots, the Data API) and
``imports`` (the /v1/imports resource)."""
