"""The web pages under /app/: ``pages``, with their templates/ and static/."""
