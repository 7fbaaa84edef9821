"""The server-rendered web UI under /ui/."""
