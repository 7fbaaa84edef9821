"""Database models: jobs, runs (fire groups), executions, agents, the scheduler lease, tokens.

State changes live in `jobs.services`; models hold fields, constraints and tiny helpers only.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Concurrency(models.TextChoices):
    ALLOW = "allow"
    FORBID = "forbid"
    REPLACE = "replace"


class MisfirePolicy(models.TextChoices):
    SKIP = "skip"
    RUN_ONCE = "run_once"
    RUN_ALL = "run_all"


class JobStatus(models.TextChoices):
    UNTRIGGERED = "", "untriggered"
    SUCCESS = "success"
    FAILED = "failed"
    PARTIALLY_FAILED = "partially_failed"
    RUNNING = "running"


class Job(models.Model):
    """A scheduled job, identified by `name`; the single source of truth for job timing."""

    name = models.CharField(max_length=255, unique=True, help_text="Dkron slug: a-z, 0-9, _ and -")
    displayname = models.CharField(max_length=255, blank=True, default="")
    schedule = models.CharField(max_length=255, blank=True, default="", help_text="Dkron spec")
    timezone = models.CharField(max_length=64, blank=True, default="", help_text="IANA zone")
    owner = models.CharField(max_length=255, blank=True, default="")
    owner_email = models.CharField(max_length=255, blank=True, default="")
    disabled = models.BooleanField(default=False)
    tags = models.JSONField(default=dict, blank=True, help_text="Node targeting k -> v[:count]")
    metadata = models.JSONField(default=dict, blank=True, help_text="Free labels")
    retries = models.PositiveIntegerField(default=0, help_text="Extra attempts after failure")
    retry_backoff = models.FloatField(default=1.0, help_text="Base seconds, doubled per attempt")
    concurrency = models.CharField(max_length=16, choices=Concurrency, default=Concurrency.ALLOW)
    executor = models.CharField(max_length=64, blank=True, default="")
    executor_config = models.JSONField(default=dict, blank=True, help_text="Validated by executor")
    processors = models.JSONField(default=dict, blank=True)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="dependents",
        help_text="Runs after the parent's successful run",
    )
    ephemeral = models.BooleanField(default=False, help_text="Delete after first success")
    starts_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    misfire_policy = models.CharField(max_length=16, choices=MisfirePolicy, default="skip")
    catchup_window = models.FloatField(default=3600.0, help_text="Seconds of catch-up look-back")
    jitter = models.FloatField(
        default=0.0, help_text="Seconds: each fire starts at a stable offset within this window"
    )
    history_limit = models.PositiveIntegerField(null=True, blank=True)
    notify = models.JSONField(default=dict, blank=True)
    # Calendars (jobs.calendars), by name: never fire inside any of the first, and, when the
    # second is not empty, only inside one of them.
    exclude_calendars = models.JSONField(
        default=list, blank=True, help_text="Names of calendars this job never fires inside"
    )
    only_calendars = models.JSONField(
        default=list, blank=True, help_text="Names of calendars this job fires only inside"
    )
    # Run parameters (jobs.params): declared here, given by a run now, defaults otherwise.
    params = models.JSONField(
        default=list,
        blank=True,
        help_text="Declared run parameters: a list of {name, type, default, required, "
        "description, choices}; runs get them as DKRON_PARAM_<NAME> and {{ params.<name> }}",
    )
    # Concurrency keys (jobs.concurrency): at most `concurrency_limit` executions holding the
    # same key run at once across all jobs and agents, and `rate_limit` caps how often they
    # start. The key may name the job's metadata: `db:{metadata.db}`.
    # The new columns (issue 16) have database defaults too, so the rows a process of the
    # previous release inserts during a rolling upgrade (which names none of them) are valid.
    concurrency_key = models.CharField(
        max_length=255,
        blank=True,
        default="",
        db_default="",
        help_text="Executions holding the same key share its limits; may use {metadata.x}",
    )
    concurrency_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many executions of the key run at once"
    )
    rate_limit = models.CharField(
        max_length=32,
        blank=True,
        default="",
        db_default="",
        help_text="Starts of the key's executions: N/s, N/m or N/h",
    )
    # SLA and health rules (jobs.services.sla): start_within, max_duration, kill_after,
    # success_within (Go durations), consecutive_failures. `has_sla` says whether any is set,
    # so the scheduler's check reads only such jobs (its partial index), never the others.
    sla = models.JSONField(
        default=dict,
        db_default={},
        blank=True,
        help_text="SLA rules: start_within, max_duration, kill_after, success_within (Go "
        "durations), consecutive_failures (a count)",
    )
    has_sla = models.BooleanField(
        default=False, db_default=False, help_text="Whether `sla` holds any rule (server-kept)"
    )
    problems = models.JSONField(
        default=dict,
        blank=True,
        help_text="What dkronweb's own validation found wrong when a restore or import stored "
        "the job anyway (key -> message); its runs fail with it until an upsert validates",
    )
    # Job history (jobs.services.revisions): the number of the job's latest JobRevision; 0 for
    # a job no change has been recorded for since the upgrade that added revisions.
    revision = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Number of the job's current revision (0: none yet)"
    )

    # Server-maintained.
    status = models.CharField(max_length=32, choices=JobStatus, default="", blank=True)
    success_count = models.PositiveBigIntegerField(default=0)
    error_count = models.PositiveBigIntegerField(default=0)
    last_success = models.DateTimeField(null=True, blank=True)
    last_error = models.DateTimeField(null=True, blank=True)
    next_run = models.DateTimeField(
        null=True, blank=True, help_text="Next fire time (UTC); null when none"
    )
    # With jitter, next_run is when the next fire starts (what the scheduler's index orders)
    # and next_scheduled the schedule's own time, the fire key; null when they are the same.
    next_scheduled = models.DateTimeField(
        null=True, blank=True, help_text="Scheduled time of the next fire when jitter moved it"
    )
    anchor = models.DateTimeField(null=True, blank=True, help_text="Phase of @every schedules")
    missed_count = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            # The scheduler's only per-tick query: due, enabled jobs by time.
            models.Index(
                fields=["next_run"],
                name="job_due_idx",
                condition=models.Q(disabled=False, next_run__isnull=False),
            ),
            # The SLA check's jobs (jobs.services.sla): those with rules, by id.
            models.Index(fields=["id"], name="job_sla_idx", condition=models.Q(has_sla=True)),
        ]
        permissions = [
            ("run_code_jobs", "Can create or change jobs that run code on hosts (shell, docker)"),
            ("operate_job", "Can run, toggle and kill jobs"),
        ]

    def __str__(self) -> str:
        return self.name


class Run(models.Model):
    """One fire of a job (Dkron's execution `group`): the executions of all nodes and attempts.

    The unique (job, scheduled_at) constraint is the fence that makes a scheduled time fire
    at most once, whatever the number of schedulers or redelivered messages.
    """

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        MANUAL = "manual"
        PARENT = "parent"
        CATCHUP = "catchup"
        BACKFILL = "backfill"

    # No index of its own: run_job_idx and unique_fire_key lead with job_id (one index less
    # to maintain on every fire).
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="runs", db_index=False)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger, default=Trigger.SCHEDULE)
    created_at = models.DateTimeField(auto_now_add=True)
    # Job config at fire time, so edits do not affect running work and retries.
    snapshot = models.JSONField(default=dict)
    status = models.CharField(max_length=32, blank=True, default="")
    finished = models.BooleanField(default=False)
    # The job's revision at fire time (jobs.services.revisions), shown on its executions.
    revision = models.PositiveIntegerField(
        default=0, db_default=0, help_text="The job's revision it ran (0: from before revisions)"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["job", "scheduled_at"],
                name="unique_fire_key",
                condition=models.Q(scheduled_at__isnull=False),
            )
        ]
        indexes = [models.Index(fields=["job", "-id"], name="run_job_idx")]

    def __str__(self) -> str:
        return f"run {self.pk} of job {self.job_id}"


class ExecutionStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    KILLED = "killed"
    SKIPPED = "skipped"


ACTIVE_STATUSES = (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING)


class Execution(models.Model):
    """One attempt of a run on one node."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="executions")
    # No index of its own: exec_job_idx leads with job_id (one index less to maintain on every
    # insert and status change).
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="executions", db_index=False
    )
    job_name = models.CharField(max_length=255)
    attempt = models.PositiveIntegerField(default=1)
    node_name = models.CharField(max_length=255, blank=True, default="")
    # "node" when the run targets every matching node (retries stay there); "any" when the
    # run asked for a count of nodes, so a retry may go to another matching node.
    placement = models.CharField(max_length=8, default="node")
    queue = models.CharField(max_length=255, blank=True, default="")
    scheduled_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Retry backoff until")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ExecutionStatus, default="queued")
    success = models.BooleanField(default=False)
    output = models.TextField(blank=True, default="")
    output_truncated = models.BooleanField(default=False)
    reason = models.CharField(max_length=255, blank=True, default="")
    retryable = models.BooleanField(default=True)
    kill_requested = models.BooleanField(default=False)
    final = models.BooleanField(default=False, help_text="Last attempt of this node in its run")
    # The job's concurrency key as this run rendered it (jobs.concurrency); "" for none.
    concurrency_key = models.CharField(max_length=255, blank=True, default="", db_default="")
    # Why a queued execution is held back unpublished: "key" (its concurrency key is at its
    # limit or rate), "slot" (every matching agent is full; no node chosen yet); "" for none.
    waiting = models.CharField(max_length=8, blank=True, default="", db_default="")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["job", "-id"], name="exec_job_idx"),
            models.Index(
                fields=["status", "node_name"],
                name="exec_active_idx",
                condition=models.Q(status__in=["queued", "running"]),
            ),
            # "Does this job have an active execution?" (forbid, replace, the job's status
            # when a run settles, the agent's finish statement): a probe into the job's
            # active rows, not a walk through its history (exec_job_idx) or through the
            # cluster's whole active set (exec_active_idx).
            #
            # Planner statistics are always stale about `status`: they are taken when few
            # rows are queued, so every partial index on active rows looks like one row to
            # the planner, and one it may use is a trap for a query it was not meant for (a
            # scan of 100,000 queued rows where the primary key would do). `job_id IS NOT
            # NULL` (always true) keeps this one to queries that compare job_id (which
            # implies it), so only they can use it.
            models.Index(
                fields=["job"],
                name="exec_job_active_idx",
                condition=models.Q(status__in=["queued", "running"], job__isnull=False),
            ),
            # Never published and not finished: catch-up fires waiting for their publish
            # slot (not_before set), and what a previous scheduler committed and did not
            # publish (not_before null). The scheduler asks on every tick; the published
            # backlog and the history stay out. No `status` in the condition, for the reason
            # above: the queries compare the status in a form the planner cannot use to pick
            # exec_active_idx instead (jobs.services.runs).
            models.Index(
                fields=["not_before"],
                name="exec_unpublished_idx",
                condition=models.Q(published_at__isnull=True, finished_at__isnull=True),
            ),
            # Published and not finished, per node, newest publish first: the sweep's
            # "which of this node's queued executions are behind the messages still waiting
            # in its queue" reads the few rows past the queue's depth, not the node's whole
            # backlog (jobs.services.maintenance). Running rows (bounded by the agents'
            # slots) are in it too; no `status` in the condition, as above.
            models.Index(
                fields=["node_name", "published_at", "id"],
                name="exec_published_idx",
                condition=models.Q(published_at__isnull=False, finished_at__isnull=True),
            ),
            # Held executions, in fire order: what a freed slot admits next, and the finish
            # statement's "does anything wait for a slot?". Empty unless slots are full or
            # keys at their limits; finished rows leave it.
            models.Index(
                fields=["waiting", "id"],
                name="exec_waiting_idx",
                condition=~models.Q(waiting="") & models.Q(finished_at__isnull=True),
            ),
            # A key's held executions in fire order (its admission), not every key's.
            models.Index(
                fields=["concurrency_key", "id"],
                name="exec_key_waiting_idx",
                condition=~models.Q(waiting="")
                & ~models.Q(concurrency_key="")
                & models.Q(finished_at__isnull=True),
            ),
            # A key's admitted (published or waiting for a slot) and running executions:
            # what a claim or an admission counts
            # against the limit, bounded by the limit however long the key's waiting line.
            models.Index(
                fields=["concurrency_key", "status"],
                name="exec_key_idx",
                condition=~models.Q(waiting="key")
                & ~models.Q(concurrency_key="")
                & models.Q(finished_at__isnull=True),
            ),
            # A key's starts by time: the rate window's count reads the window's rows only.
            models.Index(
                fields=["concurrency_key", "started_at"],
                name="exec_key_started_idx",
                condition=~models.Q(concurrency_key="") & models.Q(started_at__isnull=False),
            ),
            # Retention walks finished rows oldest first; queued and running rows (no
            # finished_at) stay out of the index.
            models.Index(
                fields=["finished_at"],
                name="exec_finished_idx",
                condition=models.Q(finished_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_name} #{self.pk} attempt {self.attempt}"


class Agent(models.Model):
    """A cluster member, refreshed by its heartbeat: an agent (Celery worker with node tags),
    or a scheduler-only process (tag `dkronweb_role=scheduler`), which is never given work.

    Schedulers are members so that /v1/leader names one of /v1/members, as in Dkron."""

    name = models.CharField(max_length=255, unique=True)
    instance_id = models.CharField(max_length=64, blank=True, default="")
    tags = models.JSONField(default=dict)
    address = models.CharField(max_length=255, blank=True, default="")
    port = models.PositiveIntegerField(default=0)
    version = models.CharField(max_length=32, blank=True, default="")
    concurrency = models.PositiveIntegerField(default=1)
    slots = models.PositiveIntegerField(
        default=0,
        db_default=0,
        help_text="Executions it runs at once (--slots; 0: its pool concurrency)",
    )
    running = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    left = models.BooleanField(default=False, help_text="Left the cluster gracefully")
    leaving = models.BooleanField(
        default=False,
        help_text="Stopping: takes no new work, finishing what it runs (Dkron's `leaving`)",
    )
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Metrics snapshot written with the heartbeat"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ClusterFlag(models.Model):
    """A cluster-wide switch kept in the database, so every web process sees the same value.

    `paused` (see `jobs.services.cluster`) refuses job creation, changes and deletion.
    """

    name = models.CharField(max_length=64, unique=True, help_text="Flag name, e.g. paused")
    value = models.BooleanField(default=False, help_text="Whether the flag is set")
    changed_at = models.DateTimeField(null=True, blank=True, help_text="When it last changed")
    changed_by = models.CharField(
        max_length=255, blank=True, default="", help_text="Who changed it last (user or system)"
    )

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class ClusterCounter(models.Model):
    """A cluster-wide event counter kept in the database (see `jobs.services.counters`).

    Every process of a cluster adds to the same row, so /metrics gives the same total
    whichever web process answers (`dkronweb_<name>_total`).
    """

    name = models.CharField(max_length=64, unique=True, help_text="Counter name")
    value = models.PositiveBigIntegerField(default=0, help_text="Total so far")

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class Lease(models.Model):
    """A named lease (the active scheduler); expiry is judged by the database clock."""

    name = models.CharField(max_length=64, unique=True)
    holder = models.CharField(max_length=255, blank=True, default="")
    member = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="The holder's member name (its Agent row), which /v1/leader answers",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    changes = models.PositiveBigIntegerField(default=0, help_text="Leadership changes")

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or 'free'}"


class ApiToken(models.Model):
    """An API token; only its SHA-256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=255)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise it")
    key_hash = models.CharField(max_length=64, unique=True)
    role = models.ForeignKey(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Limits the token to this group's permissions (never beyond its user's); "
        "empty: the user's own permissions",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Refused after this time")
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        help_text="The token that created this one: it never outlives it (expiry clamped, "
        "revoked with it)",
    )

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AuditEntry(models.Model):
    """Who changed what and when: written by the services, read in the admin and /v1/audit."""

    class Via(models.TextChoices):
        API = "api"
        UI = "ui"
        ADMIN = "admin"
        CLI = "cli"
        SYSTEM = "system"
        # Jobs as files (jobs.services.declarative), from `manage.py jobs apply` or /v1/apply:
        # the source of a change, whichever door it came through (the "apply" entry says).
        APPLY = "apply"

    at = models.DateTimeField(auto_now_add=True, db_index=True, help_text="When it happened")
    actor = models.CharField(max_length=150, help_text="Username, or 'system'")
    via = models.CharField(max_length=8, choices=Via, help_text="Which door it came through")
    action = models.CharField(max_length=32, db_index=True, help_text="create, run, kill, ...")
    target = models.CharField(max_length=255, blank=True, default="", help_text="Job, token...")
    detail = models.JSONField(default=dict, blank=True, help_text="Context; never secrets")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"


class Calendar(models.Model):
    """A named set of local times (dates, ranges, weekly windows) in one zone, which jobs
    name in `exclude_calendars` or `only_calendars`; see jobs.calendars for the meaning."""

    name = models.CharField(max_length=255, unique=True, help_text="a-z, 0-9, _ and -")
    description = models.TextField(blank=True, default="")
    timezone = models.CharField(max_length=64, help_text="IANA zone the times are read in")
    dates = models.JSONField(default=list, blank=True, help_text="Whole local days, YYYY-MM-DD")
    ranges = models.JSONField(
        default=list, blank=True, help_text="Local [start, end) wall times, ISO 8601"
    )
    windows = models.JSONField(
        default=list,
        blank=True,
        help_text="Weekly windows {days, start, end}; end before start crosses midnight",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def definition(self) -> dict[str, object]:
        return {
            "timezone": self.timezone,
            "description": self.description,
            "dates": self.dates,
            "ranges": self.ranges,
            "windows": self.windows,
        }


class ConcurrencyKey(models.Model):
    """A concurrency key's limits and its lock (jobs.concurrency).

    Claims and admissions of the key's executions take this row's lock first, so two
    schedulers, agents or a sweep never let more than `limit` run: the counts they read are
    then those of every commit before theirs."""

    key = models.CharField(max_length=255, unique=True)
    limit = models.PositiveIntegerField(null=True, blank=True, help_text="None: no limit")
    rate_limit = models.CharField(max_length=32, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class AlertKind(models.TextChoices):
    LATE = "late"
    OVERDUE = "overdue"
    NO_SUCCESS = "no_success"
    FAILING = "failing"


class AlertState(models.TextChoices):
    OPEN = "open"
    RESOLVED = "resolved"


class Alert(models.Model):
    """A breach of a job's SLA rule (jobs.services.sla), open until it clears.

    At most one open alert per (job, kind, subject), enforced by a partial unique index, so
    two schedulers checking at once cannot open it twice. The alerts go with their job (as
    its runs and executions do): a deleted job leaves no open alert that nothing resolves.
    """

    # No index of its own: alert_job_idx leads with job_id.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="alerts", db_index=False)
    job_name = models.CharField(max_length=255, help_text="The job's name when it opened")
    kind = models.CharField(max_length=16, choices=AlertKind, help_text="The rule breached")
    state = models.CharField(max_length=16, choices=AlertState, default=AlertState.OPEN)
    subject = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="What breached: 'run <id>' (late), 'execution <id>' (overdue); empty for "
        "the job-wide rules (no_success, failing)",
    )
    detail = models.JSONField(default=dict, blank=True, help_text="What the check saw")
    opened_at = models.DateTimeField(help_text="When the check opened it")
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="When it cleared")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "kind", "subject"],
                name="alert_open_unique",
                condition=models.Q(state="open"),
            )
        ]
        indexes = [
            # The check's and /health's open alerts, whatever the history's length.
            models.Index(fields=["id"], name="alert_open_idx", condition=models.Q(state="open")),
            models.Index(fields=["job", "-id"], name="alert_job_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.state} {self.job_name} {self.subject}".strip()


class JobRevision(models.Model):
    """One recorded change of a job (jobs.services.revisions): the job as it was after it,
    as GET /v1/jobs/{name} shows it (secrets masked), without the server-maintained fields.

    Keyed by the job's name, not a foreign key: the history of a deleted job stays (its last
    revision is the deletion, and a restore of any revision brings the job back), and a job
    created again under the same name continues the same numbering.
    """

    class Change(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        TOGGLE = "toggle"
        DELETE = "delete"
        RESTORE = "restore", "restore (rollback to an earlier revision)"
        BASELINE = "baseline", "baseline (the job as it was before its first recorded change)"

    job_name = models.CharField(max_length=255, help_text="The job's name")
    number = models.PositiveIntegerField(help_text="1, 2, 3... per job name")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the change was made")
    actor = models.CharField(max_length=150, help_text="Username, or 'system'")
    source = models.CharField(
        max_length=16,
        help_text="Through what: api, ui, admin, cli, system, restore (a /v1/restore backup), "
        "import (import_jobs), apply",
    )
    change = models.CharField(max_length=16, choices=Change, help_text="What the change was")
    data = models.JSONField(help_text="The job after the change, secrets masked")
    secrets_changed = models.JSONField(
        default=list,
        blank=True,
        help_text="Which secrets this change set or replaced (paths such as "
        "executor_config.env.TOKEN); never their values",
    )
    restored_from = models.PositiveIntegerField(
        null=True, blank=True, help_text="For a restore: the revision it brought back"
    )

    class Meta:
        ordering = ["job_name", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["job_name", "number"], name="unique_job_revision")
        ]

    def __str__(self) -> str:
        return f"{self.job_name} r{self.number} ({self.change})"


class Backfill(models.Model):
    """A request to run a job's past fire times in [range_from, range_to] (jobs.services.backfill).

    The scheduler leader works through its items in small batches, at most `max_concurrency`
    of its runs active at once; each run takes the fire time's key (job, scheduled_at), the
    one a scheduled fire takes, so a time runs at most once whoever asks."""

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        CANCELLED = "cancelled"
        FAILED = "failed"

    class Reprocess(models.TextChoices):
        MISSING = "missing"
        FAILED = "failed"
        ALL = "all"

    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="backfills", help_text="The job backfilled"
    )
    range_from = models.DateTimeField(help_text="First fire time considered (inclusive)")
    range_to = models.DateTimeField(help_text="Last fire time considered (inclusive)")
    reprocess = models.CharField(
        max_length=16,
        choices=Reprocess,
        default=Reprocess.MISSING,
        help_text="missing: times that never ran; failed: also those whose run failed; all",
    )
    max_concurrency = models.PositiveIntegerField(
        default=1, help_text="At most this many of the backfill's runs active at once"
    )
    state = models.CharField(
        max_length=16, choices=State, default=State.PENDING, help_text="Where it stands"
    )
    fire_times = models.PositiveIntegerField(default=0, help_text="Fire times in the range")
    total = models.PositiveIntegerField(default=0, help_text="Fire times it set out to run")
    created = models.PositiveIntegerField(default=0, help_text="Runs started (new or re-run)")
    skipped = models.PositiveIntegerField(
        default=0, help_text="Times found taken when their turn came (fired meanwhile)"
    )
    finished = models.PositiveIntegerField(default=0, help_text="Its runs that have finished")
    error = models.CharField(max_length=255, blank=True, default="", help_text="Why it failed")
    actor = models.CharField(max_length=150, blank=True, default="", help_text="Who asked")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="First batch started")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="Done, failed or ended")
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The leader's per-tick question: which backfills are still to advance.
            models.Index(
                fields=["id"],
                name="backfill_open_idx",
                condition=models.Q(state__in=["pending", "running"]),
            ),
        ]

    def __str__(self) -> str:
        return f"backfill {self.pk} of job {self.job_id}"


class BackfillItem(models.Model):
    """One fire time of a backfill: waiting for its turn, started (its run), or passed over."""

    class State(models.TextChoices):
        PENDING = "pending"
        STARTED = "started"
        DONE = "done"
        SKIPPED = "skipped"
        CANCELLED = "cancelled"

    # No index of its own: backfill_item_key and bf_item_idx lead with backfill_id.
    backfill = models.ForeignKey(
        Backfill, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    scheduled_at = models.DateTimeField(help_text="The fire time (the run's fire key)")
    state = models.CharField(max_length=16, choices=State, default=State.PENDING)
    run = models.ForeignKey(
        Run,
        null=True,
        blank=True,
        # Retention deletes runs on a hot path: no constraint and no cascade query there. An
        # item whose run was trimmed from history reads as done.
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        help_text="The run it started",
    )
    previous_run = models.ForeignKey(
        Run,
        null=True,
        blank=True,
        # As `run`.
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        help_text="A re-run: the earlier run, released from the fire key and kept in history",
    )
    reason = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["scheduled_at"]
        constraints = [
            models.UniqueConstraint(fields=["backfill", "scheduled_at"], name="backfill_item_key")
        ]
        indexes = [models.Index(fields=["backfill", "state", "scheduled_at"], name="bf_item_idx")]

    def __str__(self) -> str:
        return f"{self.scheduled_at:%Y-%m-%d %H:%M:%S} of backfill {self.backfill_id}"
