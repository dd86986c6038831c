"""iCalendar, as Almanac reads, checks, indexes and writes it: a family of modules stacked with the
plain values at the bottom, each importing only those below it.

- ``values``: constants, times and a property's values, parsing a stored resource and splitting
  its text, ETags and hrefs;
- ``walk``: the bounds that contain every instance and the recurrence walk (the index's spans);
- ``repairs``: what real writers send that is repaired, and what is refused;
- ``windows``: instances in a window, CalDAV ``expand``;
- ``resources``: one resource per UID, assembled for the store;
- ``instances``: one occurrence overridden, cancelled or shown alone, times in another zone;
- ``busy``: busy periods (free/busy).

Everything here is pure: text in, values out.
"""
