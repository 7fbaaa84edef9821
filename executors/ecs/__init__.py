"""The `ecs` executor: run one AWS ECS task, as Dkron Pro's ECS plugin, and judge its exit code.

A run registers `taskdefBody` (or looks up `taskdefName`), starts one task with the job's
overrides, polls it until ECS reports it STOPPED while copying its CloudWatch log stream into the
output, and succeeds when the essential container (or the one `service` names) exited with 0.
A timeout or kill stops the task in ECS, so no task outlives its execution. boto3's normal
credential chain applies; `endpointUrl` points it at LocalStack, moto or a private endpoint.

One file per part: `config` (the schema), `executor` (the class), `run` (the lifecycle),
`errors` (AWS error classification) and `logs` (the CloudWatch tail).
"""

from executors.ecs.config import EcsConfig
from executors.ecs.executor import EcsExecutor

__all__ = ["EcsConfig", "EcsExecutor"]
