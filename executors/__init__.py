"""Executors: what a job does when it runs. Independent of Django models and of `jobs`."""
