"""The WCAP door (*.wcap): ``door`` (the commands) and ``page`` (the HTML upload form)."""
