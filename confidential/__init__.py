"""Secrets in job configs, in one place: which values are secret, masking, merging, output
redaction and encryption at rest, for the core and the executors alike.

A `Spec` says what is secret in a config (an executor's `secret_keys`, `secret_entries`,
`secret_urls` and `destination_keys`; a notification webhook's url and headers), and every
operation here is a walk over the values it names (`transform`), so masking, merging,
encryption and redaction always agree on what a secret is. No Django here: the keys are an
argument (`Keys`), which the core builds from DKRON_ENCRYPTION_KEY (jobs.secrets).

The run path (agent.runner), in order: the executor's declaration gives the config's `Spec`
(executors.registry.secret_spec); `unseal` decrypts the stored config with the agent's `Keys`,
failing the run with `SecretError` when no key opens a value; `output_secrets` lists what the
run's output must not show of the plain config, to which the agent adds the server's own
(jobs.secrets.server_secrets); the executor runs the plain config, and its output
(OutputSink.hide), a failure's reason and a crash's traceback pass through `redact`.
"""

from confidential.declare import (
    ENV,
    HEADERS,
    MASK,
    URL,
    WEBHOOK,
    Fn,
    Path,
    Spec,
    describe,
    guess,
    secret_values,
    transform,
)
from confidential.mask import SecretNotKept, mask, mask_header_pairs, merge
from confidential.redact import REDACT_MIN_LENGTH, output_secrets, redact, url_credentials
from confidential.seal import Keys, SecretError, is_sealed, seal, unseal

__all__ = [
    "ENV",
    "HEADERS",
    "MASK",
    "REDACT_MIN_LENGTH",
    "URL",
    "WEBHOOK",
    "Fn",
    "Keys",
    "Path",
    "SecretError",
    "SecretNotKept",
    "Spec",
    "describe",
    "guess",
    "is_sealed",
    "mask",
    "mask_header_pairs",
    "merge",
    "output_secrets",
    "redact",
    "secret_values",
    "seal",
    "transform",
    "unseal",
    "url_credentials",
]
