"""The `log` processor: write the output to the application log between begin/end markers.

Dkron prints the output to the agent's stdout (stderr on failure); here it goes to the logger
`dkronweb.processors.log` as one record (INFO on success, WARNING otherwise), so lines of
executions finishing at the same time never interleave.
"""

from __future__ import annotations

import logging
from typing import Any

from processors.base import ExecutionRecord, Processor, ProcessorConfig

__all__ = ["LOGGER_NAME", "LogProcessor"]

LOGGER_NAME = "dkronweb.processors.log"
_log = logging.getLogger(LOGGER_NAME)


class LogConfig(ProcessorConfig):
    pass


class LogProcessor(Processor):
    name = "log"
    description = "Write the output to the application log"
    config_schema = LogConfig

    def process(self, record: ExecutionRecord, config: Any) -> str:
        ident = f"job={record.job_name} execution={record.execution_id}"
        body = record.output if record.output.endswith("\n") else record.output + "\n"
        if not record.output:
            body = ""
        _log.log(
            logging.INFO if record.success else logging.WARNING,
            "----- BEGIN OUTPUT %s status=%s -----\n%s----- END OUTPUT %s -----",
            ident,
            record.status,
            body,
            ident,
        )
        return f"application log ({LOGGER_NAME})"
