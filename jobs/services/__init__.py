"""Services: every state change goes through here (API, UI, admin, tasks and commands call them)."""
