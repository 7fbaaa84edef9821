"""The benchmark: dkronweb beside stock django-celery-beat, measured in the same run.

Run `python -m bench.run --mode micro|quick|full` (see bench/README.md).
"""
