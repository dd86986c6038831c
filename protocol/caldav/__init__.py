"""CalDAV's reports as pure values (RFC 4791, RFC 6578): ``query`` reads a REPORT body,
``filters`` decides whether a resource matches a calendar-query filter, ``data`` shapes the
calendar-data a report returns. Pure: no I/O."""
