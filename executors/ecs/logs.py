"""The ecs executor's CloudWatch Logs tail: a task's log stream copied into the run's output."""

from __future__ import annotations

from typing import Any

from executors.ecs.errors import error_code, error_message
from executors.output import OutputSink

__all__ = ["LogTail"]

LOG_PAGES_PER_POLL = 50  # bound on GetLogEvents pages read between two polls


class LogTail:
    """Copies one CloudWatch log stream into the output as it grows (GetLogEvents, forward).

    The stream is `<awslogs-stream-prefix>/<container>/<task id>` when the container logs
    through awslogs with a prefix; otherwise the newest streams of the group are searched for
    one ending in the task id. A stream that does not exist yet is looked for again at the
    next poll. Reading logs never fails the run: a problem is noted once in the output.
    """

    def __init__(
        self, client: Any, group: str, container: dict[str, Any], task_id: str, out: OutputSink
    ) -> None:
        self.client = client
        self.group = group
        self.task_id = task_id
        self.out = out
        self.stream: str | None = None
        options = (container.get("logConfiguration") or {}).get("options") or {}
        driver = (container.get("logConfiguration") or {}).get("logDriver")
        prefix = options.get("awslogs-stream-prefix")
        if driver == "awslogs" and prefix:
            self.stream = f"{prefix}/{container['name']}/{task_id}"
        self.token: str | None = None
        self.seen_any = False
        self.broken = False

    def poll(self) -> None:
        if self.broken:
            return
        try:
            if self.stream is None:
                self.stream = self._search()
                if self.stream is None:
                    return
            for _ in range(LOG_PAGES_PER_POLL):
                kwargs: dict[str, Any] = {
                    "logGroupName": self.group,
                    "logStreamName": self.stream,
                    "startFromHead": True,
                }
                if self.token:
                    kwargs["nextToken"] = self.token
                response = self.client.get_log_events(**kwargs)
                for event in response.get("events") or []:
                    message = str(event.get("message", ""))
                    self.out.write(message if message.endswith("\n") else message + "\n")
                    self.seen_any = True
                token = response.get("nextForwardToken")
                if not token or token == self.token:
                    return
                self.token = token
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return  # the stream (or group) appears when the container first logs
            self.broken = True
            self.out.write(
                f"ecs: cannot read logs from log group {self.group}: {error_message(exc)}\n"
            )

    def drain(self) -> None:
        """Read what is left after the task stopped; say so when no stream was found."""
        self.poll()
        if not self.broken and not self.seen_any:
            where = f"stream {self.stream}" if self.stream else f"a stream for task {self.task_id}"
            self.out.write(f"ecs: no log events found in log group {self.group} ({where})\n")

    def _search(self) -> str | None:
        response = self.client.describe_log_streams(
            logGroupName=self.group, orderBy="LastEventTime", descending=True, limit=50
        )
        for stream in response.get("logStreams") or []:
            name = str(stream.get("logStreamName", ""))
            if name == self.task_id or name.endswith("/" + self.task_id):
                return name
        return None
