"""Output processors: ship an execution's output (log, files, syslog, fluent) after it ends."""
