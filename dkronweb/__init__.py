"""dkronweb: a Dkron-compatible distributed job scheduler on Django and Celery."""

import os

# gRPC's fork handlers restart its poller thread in every forked child. An agent forks only to
# exec a job (shell, the docker CLI), and the child closes its descriptors before exec, so
# that thread can wake on a closed epoll descriptor and log "epoll_wait error: Bad file
# descriptor" into the job's own output (grpc/grpc#43055). The handlers serve children that
# go on using gRPC after a fork, which no dkronweb process does, so they are off unless the
# operator sets the variable. It must be set before gRPC starts: this package is imported
# first by every entry point (settings, the Celery app, manage.py).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from dkronweb.celery import app as celery_app

__all__ = ["celery_app"]
__version__ = "0.1.0"
