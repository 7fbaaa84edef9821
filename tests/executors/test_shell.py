"""The shell executor: Dkron's keys, output capture, and killing whole process trees."""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from executors.base import ConfigError, ExecutionContext, ExecutorError
from executors.output import OutputSink
from executors.shell import AGENT_NAME_ENV, ShellConfig, ShellExecutor, reap_orphans
from tests.executors import fire
from tests.harness import require
from tests.scaling import assert_linear

PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]


def make_context(config: dict[str, Any], **fields: Any) -> ExecutionContext:
    return ExecutionContext(
        job_name=fields.pop("job_name", "job"),
        config=ShellExecutor().validate(config),
        output=OutputSink(),
        **fields,
    )


def run(config: dict[str, Any], **fields: Any) -> tuple[ExecutionContext, ExecutorError | None]:
    """Run a job; return its context (output) and the error it raised, if any."""
    ctx = make_context(config, **fields)
    try:
        ShellExecutor().execute(ctx)
    except ExecutorError as exc:
        return ctx, exc
    return ctx, None


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def alive(pid: int) -> bool:
    """True if the process runs; a zombie (killed, not yet reaped by init) counts as dead."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def read_pid(path: Path) -> int:
    assert wait_for(path.exists), f"{path.name} was never written"
    return int(path.read_text())


def python(code: str) -> str:
    """A command line running `code` in Python, quoted for the shell=false splitter."""
    return shlex.join([PY, "-c", code])


# --- success, failure and what the command sees ---------------------------------------------


def test_exit_code_zero_succeeds_with_the_output_captured() -> None:
    ctx, error = run({"command": "echo hello"})
    assert error is None
    assert ctx.output.text() == "hello\n"


def test_a_non_zero_exit_fails_with_the_exit_status_and_keeps_the_output() -> None:
    ctx, error = run({"command": "sh -c 'echo oops; exit 3'"})
    assert error is not None
    assert (error.message, error.status, error.retryable) == ("exit status 3", "failed", True)
    assert ctx.output.text() == "oops\n"


def test_stderr_is_merged_into_the_output() -> None:
    ctx, error = run({"command": "sh -c 'echo out; echo err >&2'"})
    assert error is None
    assert ctx.output.text() == "out\nerr\n"


def test_without_shell_the_command_is_split_into_arguments_and_no_shell_runs() -> None:
    ctx, error = run({"command": "printf '%s|' \"a b\" c"})
    assert error is None
    assert ctx.output.text() == "a b|c|"
    ctx, _ = run({"command": "echo a | tr a b"})
    assert ctx.output.text() == "a | tr a b\n"  # the pipe was an argument to echo


def test_with_shell_true_pipes_and_redirects_work() -> None:
    ctx, error = run({"command": "echo abc | tr a-c x-z 2>&1", "shell": "true"})
    assert error is None
    assert ctx.output.text() == "xyz\n"


def test_env_is_added_to_a_clean_environment_not_the_agents(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Dkron appends to the agent's whole environment; dkronweb passes only an allow-list.
    monkeypatch.setenv("FROM_AGENT", "inherited")
    monkeypatch.setenv("DKRON_SECRET_KEY", "agent-secret")
    ctx, error = run(
        {
            "command": 'echo "$FROM_AGENT|$DKRON_SECRET_KEY|$FOO|$BAZ"; command -v sh',
            "shell": "true",
            "env": "FOO=bar,BAZ=a=b c",
        }
    )
    assert error is None
    assert ctx.output.text().splitlines()[0] == "||bar|a=b c"
    assert ctx.output.text().splitlines()[1].endswith("/sh")  # PATH is there


def test_the_operators_passthrough_names_and_prefixes_reach_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FROM_AGENT", "inherited")
    monkeypatch.setenv("PROXY_A", "a")
    monkeypatch.setenv("DKRON_ENCRYPTION_KEY", "agent-key")
    ctx, error = run(
        {"command": 'echo "$FROM_AGENT|$PROXY_A|$DKRON_ENCRYPTION_KEY"', "shell": "true"},
        env_passthrough=("FROM_AGENT", "PROXY_*", "DKRON_*"),  # ours never pass, even so
    )
    assert error is None
    assert ctx.output.text() == "inherited|a|\n"


def test_two_attempts_of_one_fire_see_the_same_fire_key_and_their_attempt() -> None:
    command = 'echo "$DKRON_FIRE_KEY|$DKRON_ATTEMPT|$DKRON_SCHEDULED_AT"'
    seen = []
    for args in fire.attempts():
        ctx, error = run({"command": command, "shell": True}, job_name="backup", **args)
        assert error is None
        seen.append(ctx.output.text())
    assert seen == [
        f"{fire.key('backup')}|1|{fire.SCHEDULED_TEXT}\n",
        f"{fire.key('backup')}|2|{fire.SCHEDULED_TEXT}\n",
    ]


def test_a_job_cannot_set_its_own_fire_key() -> None:
    config = {"command": 'echo "$DKRON_FIRE_KEY"', "shell": True, "env": "DKRON_FIRE_KEY=fake"}
    ctx, error = run(config, job_name="backup", **fire.attempts()[0])
    assert error is None
    assert ctx.output.text() == f"{fire.key('backup')}\n"


def test_the_job_sees_its_name_execution_attempt_and_scheduled_time() -> None:
    names = ["DKRON_JOB_NAME", "ENV_JOB_NAME", "DKRON_EXECUTION_ID", "DKRON_ATTEMPT"]
    command = 'echo "' + "|".join(f"${name}" for name in [*names, "DKRON_SCHEDULED_AT"]) + '"'
    ctx, error = run(
        {"command": command, "shell": True},
        job_name="backup",
        execution_id="42",
        attempt=2,
        scheduled_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert error is None
    assert ctx.output.text() == "backup|backup|42|2|2024-01-02T03:04:05Z\n"
    ctx, _ = run({"command": command, "shell": True}, job_name="manual")
    assert ctx.output.text() == "manual|manual||1|\n"  # a manual run has no scheduled time


def test_a_job_cannot_override_the_dkron_variables_through_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(AGENT_NAME_ENV, "agent-1")
    ctx, _ = run(
        {
            "command": "sh -c 'echo $DKRON_JOB_NAME $DKRON_AGENT_NAME'",
            "env": "DKRON_JOB_NAME=fake,DKRON_AGENT_NAME=fake",
        }
    )
    assert ctx.output.text() == "job agent-1\n"


def test_cwd_sets_the_working_directory(tmp_path: Path) -> None:
    ctx, error = run({"command": "pwd", "cwd": str(tmp_path)})
    assert error is None
    assert ctx.output.text() == f"{tmp_path}\n"


def test_a_live_grpc_channel_in_the_agent_never_writes_into_a_job_s_output() -> None:
    """gRPC's fork handlers used to log "epoll_wait error: Bad file descriptor" from the forked
    child into the job's output, a few runs in a hundred (dkronweb/__init__.py turns them off).
    Without the fix this loop saw it 3 to 7 times in 300."""
    import grpc

    assert os.environ.get("GRPC_ENABLE_FORK_SUPPORT") == "false"
    channel = grpc.insecure_channel("127.0.0.1:1")  # a poller thread that keeps retrying
    with contextlib.suppress(grpc.FutureTimeoutError):
        grpc.channel_ready_future(channel).result(timeout=0.2)
    try:
        outputs = [run({"command": "echo ok"})[0].output.text() for _ in range(200)]
    finally:
        channel.close()
    assert [o for o in outputs if o != "ok\n"] == []


def test_a_missing_cwd_fails_with_a_clear_message(tmp_path: Path) -> None:
    _, error = run({"command": "pwd", "cwd": str(tmp_path / "nope")})
    assert error is not None
    assert "cannot change to directory" in error.message and "nope" in error.message


def test_payload_is_decoded_and_written_to_stdin() -> None:
    payload = base64.b64encode(b"hello from stdin\n").decode()
    ctx, error = run({"command": "cat", "payload": payload})
    assert error is None
    assert ctx.output.text() == "hello from stdin\n"


def test_without_payload_stdin_is_empty() -> None:
    ctx, error = run({"command": "wc -c"})
    assert error is None
    assert ctx.output.text().strip() == "0"


def test_a_command_that_does_not_exist_fails_to_start_with_a_clear_message() -> None:
    _, error = run({"command": "no-such-command-xyz --flag"})
    assert error is not None
    assert error.message == "shell: cannot run 'no-such-command-xyz': executable file not found"


# --- output ----------------------------------------------------------------------------------


def test_output_keeps_the_last_256000_bytes_and_flags_the_truncation() -> None:
    ctx, error = run({"command": python("import sys; sys.stdout.write('a' * 300000 + 'END')")})
    assert error is None
    data = ctx.output.getvalue()
    assert len(data) == 256_000
    assert data.endswith(b"aEND")
    assert ctx.output.truncated


def test_output_is_visible_in_the_sink_while_the_job_still_runs() -> None:
    ctx = make_context({"command": "echo started; sleep 30", "shell": "true"})
    errors: list[ExecutorError] = []
    worker = threading.Thread(target=_execute_into, args=(ctx, errors))
    worker.start()
    try:
        assert wait_for(lambda: "started" in ctx.output.text(), timeout=3)
        assert worker.is_alive()
    finally:
        ctx.cancel.cancel("killed")
        worker.join(5)
    assert errors and errors[0].status == "killed"


def _execute_into(ctx: ExecutionContext, errors: list[ExecutorError]) -> None:
    try:
        ShellExecutor().execute(ctx)
    except ExecutorError as exc:
        errors.append(exc)


# --- stopping a run: timeout, kill, memory ---------------------------------------------------


def test_the_timeout_kills_child_and_grandchild_even_one_that_started_its_own_session(
    tmp_path: Path,
) -> None:
    (tmp_path / "tree.sh").write_text('echo $$ > "$1/top.pid"\nsh "$1/child.sh" "$1" &\nwait\n')
    (tmp_path / "child.sh").write_text(
        'echo $$ > "$1/child.pid"\n"$PY" "$1/grandchild.py" "$1" &\nwait\n'
    )
    (tmp_path / "grandchild.py").write_text(
        "import os, sys, time\n"
        "os.setsid()\n"
        "d = sys.argv[1]\n"
        "open(d + '/gc.tmp', 'w').write(str(os.getpid()))\n"
        "os.rename(d + '/gc.tmp', d + '/gc.pid')\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    ctx, error = run(
        {"command": f"sh {tmp_path}/tree.sh {tmp_path}", "timeout": "2s", "env": f"PY={PY}"}
    )
    elapsed = time.monotonic() - started

    assert error is not None
    assert (error.status, error.retryable) == ("timeout", True)
    assert elapsed < 4
    line = (
        f"shell: Job 'sh {tmp_path}/tree.sh {tmp_path}' execution time exceeding defined "
        "timeout 2s. Job was killed"
    )
    assert error.message == line
    assert ctx.output.text().endswith(line + "\n")
    pids = {name: read_pid(tmp_path / f"{name}.pid") for name in ("top", "child", "gc")}
    assert wait_for(lambda: not any(alive(pid) for pid in pids.values()), timeout=2), {
        name: alive(pid) for name, pid in pids.items()
    }


def test_a_kill_stops_a_running_job_within_a_second_and_is_not_retried(tmp_path: Path) -> None:
    pid_file = tmp_path / "job.pid"
    ctx = make_context({"command": f"sh -c 'echo $$ > {pid_file}; exec sleep 30'"})
    threading.Timer(0.3, ctx.cancel.cancel, args=("killed",)).start()
    started = time.monotonic()
    with pytest.raises(ExecutorError) as info:
        ShellExecutor().execute(ctx)
    assert time.monotonic() - started < 1.3
    assert (info.value.status, info.value.retryable) == ("killed", False)
    assert "was killed on request" in ctx.output.text()
    assert not alive(read_pid(pid_file))


def test_a_cancel_for_timeout_records_a_retryable_timeout() -> None:
    ctx = make_context({"command": "sleep 30", "timeout": "1h"})
    threading.Timer(0.2, ctx.cancel.cancel, args=("timeout",)).start()
    with pytest.raises(ExecutorError) as info:
        ShellExecutor().execute(ctx)
    assert (info.value.status, info.value.retryable) == ("timeout", True)
    assert "exceeding defined timeout 1h0m0s" in info.value.message


def test_the_agents_default_timeout_applies_when_the_job_sets_none() -> None:
    ctx, error = run({"command": "sleep 30"}, default_timeout=0.5)
    assert error is not None
    assert error.status == "timeout"
    assert error.message.endswith("exceeding defined timeout 500ms. Job was killed")


def test_mem_limit_kills_a_job_whose_memory_grows_past_it() -> None:
    hog = python(
        "import time; b = b'x' * (150 * 1024 * 1024); print('allocated', flush=True); "
        "time.sleep(30)"
    )
    started = time.monotonic()
    ctx, error = run({"command": hog, "mem_limit": "50MB"})
    assert error is not None
    assert time.monotonic() - started < 5
    assert (error.status, error.retryable) == ("failed", True)
    assert "exceeding defined limit (52428800 bytes). Job was killed" in error.message
    assert ctx.output.text().startswith("allocated\n")
    assert "memory usage (" in ctx.output.text()


def test_a_job_under_its_mem_limit_runs_normally() -> None:
    _, error = run({"command": "sleep 1.2", "mem_limit": "512MB"})
    assert error is None


# --- su ---------------------------------------------------------------------------------------


def test_su_runs_the_command_as_that_user() -> None:
    require(os.geteuid() == 0, "su needs the agent to run as root (CI runs as root)")
    ctx, error = run({"command": "sh -c 'id -un; echo $HOME'", "su": "nobody"})
    assert error is None
    assert ctx.output.text().splitlines()[0] == "nobody"
    ctx, error = run({"command": "id -gn", "su": "nobody:nogroup"})
    assert error is None
    assert ctx.output.text() == "nogroup\n"


def test_su_with_a_user_unknown_on_this_host_fails_without_retry() -> None:
    _, error = run({"command": "id", "su": "no-such-user-xyz"})
    assert error is not None
    assert error.retryable is False
    assert "unknown user 'no-such-user-xyz'" in error.message


# --- config validation -------------------------------------------------------------------------


def test_config_accepts_dkrons_string_values() -> None:
    config = ShellExecutor().validate(
        {
            "command": "echo hi",
            "shell": "true",
            "timeout": "30s",
            "mem_limit": "512MB",
            "env": "A=1,B=2",
            "payload": base64.b64encode(b"x").decode(),
            "su": "nobody:nogroup",
            "cwd": "",
        }
    )
    assert isinstance(config, ShellConfig)
    assert config.shell is True
    assert config.timeout == timedelta(seconds=30)
    assert config.mem_limit == 512 * 1024 * 1024
    assert config.env == {"A": "1", "B": "2"}
    assert config.payload == b"x"
    assert ShellExecutor().timeout_seconds(config) == 30.0


def test_config_reads_empty_dkron_values_as_unset() -> None:
    config = ShellExecutor().validate(
        {"command": "true", "shell": "", "timeout": "", "mem_limit": "", "env": ""}
    )
    assert isinstance(config, ShellConfig)
    assert (config.shell, config.timeout, config.mem_limit, config.env) == (False, None, None, {})
    assert ShellExecutor().timeout_seconds(config) is None


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"timeout": "30"}, "timeout", "missing unit in duration '30'"),
        ({"timeout": "-1s"}, "timeout", "greater than zero"),
        ({"mem_limit": "lots"}, "mem_limit", "invalid size 'lots'"),
        ({"mem_limit": "5XB"}, "mem_limit", "unknown unit 'XB'"),
        ({"memory_limit": "512m"}, "memory_limit", "unknown key"),
        ({"shell": "yes"}, "shell", "invalid boolean 'yes'"),
        ({"payload": "not base64!"}, "payload", "not valid base64"),
        ({"env": "FOO"}, "env", "not of the form K=V"),
        ({"su": "a:b:c"}, "su", '"user" or "user:group"'),
        ({"command": ""}, "command", "Command missing"),
        ({"command": "echo 'unbalanced"}, "command", "cannot split command"),
    ],
)
def test_config_rejects_bad_values_naming_the_key(
    raw: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        ShellExecutor().validate({"command": "echo hi", **raw})
    assert key in info.value.errors
    assert message in info.value.errors[key]


def test_config_requires_a_command() -> None:
    with pytest.raises(ConfigError) as info:
        ShellExecutor().validate({"shell": "true"})
    assert info.value.errors == {"command": "Field required"}


def test_an_unbalanced_quote_is_fine_when_a_shell_parses_the_command() -> None:
    ShellExecutor().validate({"command": 'echo "it\'s"', "shell": "true"})


@pytest.mark.parametrize(
    "make_command",
    [
        lambda n: "echo " + "ab " * (n // 3),
        lambda n: "echo " + "a" * n,
        lambda n: "echo '" + "a b" * (n // 3) + "'",
        lambda n: 'echo "' + 'x\\"y ' * (n // 5) + '"',
    ],
    ids=["many-words", "one-long-word", "single-quoted", "double-quoted"],
)
def test_a_large_command_without_shell_validates_in_linear_time(make_command: Any) -> None:
    """A 1.5 MB command (under the body limit) took 25 s to split and froze the embedded
    server; validating it must cost about three times what a 0.5 MB one costs."""
    executor = ShellExecutor()
    assert_linear(lambda n: lambda: executor.validate({"command": make_command(n)}))


# --- processes must not outlive their agent ---------------------------------------------------

AGENT_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from executors.base import ExecutionContext
from executors.output import OutputSink
from executors.shell import ShellExecutor
executor = ShellExecutor()
config = executor.validate({"command": sys.argv[2], "shell": "true"})
executor.execute(ExecutionContext(job_name="orphans", config=config, output=OutputSink()))
"""


def test_a_dead_agents_child_dies_with_it_and_a_new_agent_reaps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent_name = f"test-agent-{uuid.uuid4().hex[:8]}"
    grandchild = (
        f"{shlex.quote(PY)} -c 'import os, time; os.setsid(); "
        f'open("{tmp_path}/gc.pid", "w").write(str(os.getpid())); time.sleep(60)\' > /dev/null &'
    )
    command = (
        f"echo $$ > {tmp_path}/child.tmp; mv {tmp_path}/child.tmp {tmp_path}/child.pid; "
        f"{grandchild} sleep 60"
    )
    agent = subprocess.Popen(
        [PY, "-c", AGENT_SCRIPT, str(ROOT), command],
        env={**os.environ, AGENT_NAME_ENV: agent_name},
    )
    try:
        child = read_pid(tmp_path / "child.pid")
        assert wait_for(
            lambda: (tmp_path / "gc.pid").exists() and (tmp_path / "gc.pid").read_text() != ""
        )
        orphan = int((tmp_path / "gc.pid").read_text())

        # A job of a live agent with the same name (this process) must survive the reaping.
        monkeypatch.setenv(AGENT_NAME_ENV, agent_name)
        live_pid_file = tmp_path / "live.pid"
        live = make_context({"command": f"sh -c 'echo $$ > {live_pid_file}; exec sleep 30'"})
        errors: list[ExecutorError] = []
        worker = threading.Thread(target=_execute_into, args=(live, errors))
        worker.start()
        live_pid = read_pid(live_pid_file)

        agent.send_signal(signal.SIGKILL)
        agent.wait(5)
        assert wait_for(lambda: not alive(child), timeout=2), "parent-death signal not delivered"
        assert alive(orphan)  # it started its own session: only reaping can find it

        killed = reap_orphans(agent_name)
        assert orphan in killed
        assert live_pid not in killed
        assert wait_for(lambda: not alive(orphan), timeout=2)
        assert alive(live_pid)
        live.cancel.cancel("killed")
        worker.join(5)
    finally:
        agent.kill()
        agent.wait()
        for name in ("child.pid", "gc.pid"):
            path = tmp_path / name
            if path.exists() and path.read_text():
                _kill_quietly(int(path.read_text()))


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
