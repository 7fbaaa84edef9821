"""Jobs: the scheduler's domain (models, services, scheduling, API, admin, UI)."""
