"""The CalDAV door (/dav/): ``door`` (methods), ``props`` (properties), ``reports`` (REPORTs)."""
