"""The job page: summary, schedule in words with the next fire times, executions with their
output, and the actions (run now, toggle, delete, kill) done through the services."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.contrib.messages import get_messages

from jobs import timing
from jobs.models import Execution, Job, Run
from jobs.services.executions import execution_claim
from jobs.services.jobs import job_upsert
from jobs.services.runs import run_now
from tests.web.api.helpers import add_agent


def make_job(name: str, **fields: object) -> Job:
    data: dict[str, object] = {
        "name": name,
        "schedule": "0 0 3 * * *",
        "timezone": "Europe/Berlin",
        "executor": "shell",
        "executor_config": {"command": "true"},
    }
    data.update(fields)
    return job_upsert(data=data)[0]


def execution(job: Job, *, status: str = "success", output: str = "", **fields: object):  # type: ignore[no-untyped-def]
    run = Run.objects.create(job=job, trigger="manual", snapshot={})
    now = datetime.now(UTC)
    return Execution.objects.create(
        run=run,
        job=job,
        job_name=job.name,
        node_name="node-1",
        status=status,
        output=output,
        started_at=now - timedelta(seconds=3),
        finished_at=None if status in ("queued", "running") else now,
        **fields,
    )


def section(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"(.*?)</(ol|section|p)>', page, re.S)
    assert match, f"no #{element_id}"
    return match.group(1)


def flashed(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_job_page_asks_anonymous_visitors_to_log_in(client, db):
    make_job("nightly")
    response = client.get("/ui/jobs/nightly/")
    assert response.status_code == 302
    assert response["Location"].startswith("/ui/login/?next=/ui/jobs/nightly/")


def test_an_unknown_job_is_not_found(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/ui/jobs/nope/").status_code == 404


def test_the_summary_shows_the_job_with_its_secrets_masked(client, admin_user):
    make_job(
        "publish",
        displayname="Publish events",
        owner="ops",
        executor="kafka",
        executor_config={
            "brokerAddress": "k:9092",
            "topic": "t",
            "saslUsername": "bob",
            "saslPassword": "hunter2",
            "saslMechanism": "plain",
        },
        tags={"role": "web"},
        metadata={"team": "data"},
        retries=2,
    )
    client.force_login(admin_user)
    page = client.get("/ui/jobs/publish/").content.decode()
    summary = section(page, "job-summary")
    assert "Publish events" in page and "ops" in summary and "kafka" in summary
    assert "k:9092" in summary and "********" in summary
    assert "hunter2" not in page
    assert "role=web" in summary and "team=data" in summary


def test_the_schedule_is_described_with_the_next_five_fires_in_the_job_zone(client, admin_user):
    make_job("nightly")
    client.force_login(admin_user)
    page = client.get("/ui/jobs/nightly/").content.decode()
    assert "At 03:00 (Europe/Berlin)" in section(page, "schedule-description")
    fires = re.findall(r"<li>(.*?)</li>", section(page, "next-fires"), re.S)
    assert len(fires) == 5
    berlin = ZoneInfo("Europe/Berlin")
    moments = [
        datetime.fromisoformat(m)
        for m in re.findall(r'<time datetime="([^"]+)"', section(page, "next-fires"))
    ]
    assert len(moments) == 5 and moments == sorted(moments)
    for moment, text in zip(moments, fires, strict=True):
        local = moment.astimezone(berlin)
        assert (local.hour, local.minute) == (3, 0)
        assert local.strftime("%Y-%m-%d 03:00:00") in text


def test_a_jittered_job_shows_where_each_fire_starts_in_its_window(client, admin_user):
    job = make_job("spread", jitter=600)
    client.force_login(admin_user)
    page = client.get("/ui/jobs/spread/").content.decode()
    assert "within 600 s after its time" in section(page, "job-summary")
    moments = [
        datetime.fromisoformat(m)
        for m in re.findall(r'<time datetime="([^"]+)"', section(page, "next-fires"))
    ]
    offsets = re.findall(r"starts \+([0-9.]+) ?(s|min)", section(page, "next-fires"))
    assert len(moments) == len(offsets) == 5
    for moment, (value, unit) in zip(moments, offsets, strict=True):
        seconds = float(value) * (60 if unit == "min" else 1)
        expected = timing.jitter_offset(job, moment).total_seconds()
        assert abs(seconds - expected) <= (6 if unit == "min" else 0.1)


def test_a_manual_job_and_a_child_job_say_how_they_run(client, admin_user):
    parent = make_job("parent-job")
    make_job("by-hand", schedule="@manually")
    make_job("child", schedule="", parent_job=parent.name)
    client.force_login(admin_user)
    page = client.get("/ui/jobs/by-hand/").content.decode()
    assert "Only when run manually" in page and "runs only when started by hand" in page
    assert "<li>" not in section(page, "next-fires")
    page = client.get("/ui/jobs/child/").content.decode()
    assert "Runs after parent-job succeeds" in page
    assert 'href="/ui/jobs/parent-job/"' in page
    page = client.get("/ui/jobs/parent-job/").content.decode()
    assert 'href="/ui/jobs/child/"' in page


def test_executions_are_listed_newest_first_with_status_node_attempt_and_group(client, admin_user):
    job = make_job("listed")
    first = execution(job, status="failed", reason="exit status 1")
    second = execution(job, status="success", attempt=2)
    client.force_login(admin_user)
    page = client.get("/ui/jobs/listed/").content.decode()
    rows = re.findall(r'<tr data-execution="(\d+)" data-status="(\w+)">', page)
    assert rows == [(str(second.pk), "success"), (str(first.pk), "failed")]
    assert "node-1" in page and "exit status 1" in page and f">{second.run_id}<" in page
    assert 'data-refresh-url="/ui/jobs/listed/executions/"' in page
    assert 'data-refresh-every="1000"' in page


def test_at_most_fifty_executions_are_shown(client, admin_user):
    job = make_job("many")
    for _ in range(55):
        execution(job)
    client.force_login(admin_user)
    page = client.get("/ui/jobs/many/").content.decode()
    assert len(re.findall(r"<tr data-execution=", page)) == 50


def test_a_long_output_shows_its_tail_and_the_full_output_loads_on_demand(client, admin_user):
    job = make_job("chatty")
    output = "".join(f"line {i}\n" for i in range(2000))
    e = execution(job, output=output)
    short = execution(job, output="just this\n")
    client.force_login(admin_user)
    page = client.get("/ui/jobs/chatty/").content.decode()
    pre = re.search(rf'<pre class="output" id="pre-{e.pk}">(.*?)</pre>', page, re.S)
    assert pre and "line 1999" in pre.group(1) and "line 0\n" not in pre.group(1)
    assert len(pre.group(1).encode()) <= 4096
    assert f'id="out-{e.pk}"' in page
    assert f'data-load-full="/ui/executions/{e.pk}/output/"' in page
    assert f'data-target="pre-{e.pk}"' in page
    assert f'data-load-full="/ui/executions/{short.pk}/output/"' not in page
    full = client.get(f"/ui/executions/{e.pk}/output/")
    assert full["Content-Type"].startswith("text/plain")
    assert full.content.decode() == output


def test_the_full_output_needs_a_signed_in_user(client, db):
    e = execution(make_job("private"), output="secret-ish\n")
    assert client.get(f"/ui/executions/{e.pk}/output/").status_code == 302


def test_the_executions_fragment_is_the_same_table_for_live_refresh(client, admin_user):
    job = make_job("live")
    running = execution(job, status="running", output="half way\n")
    client.force_login(admin_user)
    fragment = client.get("/ui/jobs/live/executions/").content.decode()
    assert "<html" not in fragment
    assert f'<tr data-execution="{running.pk}" data-status="running">' in fragment
    assert "half way" in fragment and ">Kill</button>" in fragment
    Execution.objects.filter(pk=running.pk).update(status="success", output="done\n")
    fragment = client.get("/ui/jobs/live/executions/").content.decode()
    assert 'data-status="success"' in fragment and "done" in fragment
    assert ">Kill</button>" not in fragment


def test_run_now_starts_a_run_on_a_live_agent(client, admin_user):
    add_agent("agent-1")
    job = make_job("run-me", disabled=True)
    client.force_login(admin_user)
    response = client.post("/ui/jobs/run-me/run/")
    assert response.status_code == 302 and response["Location"] == "/ui/jobs/run-me/"
    assert any(m.startswith("Run started") for m in flashed(response))
    [queued] = Execution.objects.filter(job=job)
    assert (queued.status, queued.node_name, queued.run.trigger) == ("queued", "agent-1", "manual")


def test_toggle_disables_then_enables_the_job(client, admin_user):
    make_job("flip")
    client.force_login(admin_user)
    response = client.post("/ui/jobs/flip/toggle/")
    assert response["Location"] == "/ui/jobs/flip/"
    assert flashed(response) == ["Job disabled"]
    assert Job.objects.get(name="flip").disabled is True
    page = client.get("/ui/jobs/flip/").content.decode()
    assert ">Enable</button>" in page and ">Disable</button>" not in page
    response = client.post("/ui/jobs/flip/toggle/")
    assert flashed(response) == ["Job enabled"]
    assert Job.objects.get(name="flip").disabled is False


def test_actions_refuse_a_get(client, admin_user):
    make_job("posts-only")
    client.force_login(admin_user)
    assert client.get("/ui/jobs/posts-only/run/").status_code == 405
    assert client.get("/ui/jobs/posts-only/toggle/").status_code == 405


def test_delete_asks_for_confirmation_then_deletes(client, admin_user):
    make_job("doomed")
    client.force_login(admin_user)
    confirm = client.get("/ui/jobs/doomed/delete/")
    assert confirm.status_code == 200
    assert "Delete job doomed?" in confirm.content.decode()
    assert Job.objects.filter(name="doomed").exists()
    response = client.post("/ui/jobs/doomed/delete/")
    assert response.status_code == 302 and response["Location"] == "/ui/jobs/"
    assert flashed(response) == ["Job doomed deleted"]
    assert not Job.objects.filter(name="doomed").exists()


def test_delete_is_refused_while_the_job_has_dependents(client, admin_user):
    make_job("base")
    make_job("follower", schedule="", parent_job="base")
    client.force_login(admin_user)
    assert "follower" in client.get("/ui/jobs/base/delete/").content.decode()
    response = client.post("/ui/jobs/base/delete/", follow=True)
    assert response.redirect_chain[-1][0] == "/ui/jobs/base/"
    assert "could not delete job with dependent jobs" in response.content.decode()
    assert Job.objects.filter(name="base").exists()


def test_kill_of_a_running_execution_requests_the_kill(client, admin_user):
    add_agent("agent-1")
    job = make_job("sleeper")
    run_now(job=job)
    queued = Execution.objects.get(job=job)
    running = execution_claim(execution_id=queued.pk, node_name="agent-1")
    assert running is not None
    client.force_login(admin_user)
    response = client.post(f"/ui/executions/{running.pk}/kill/")
    assert response["Location"] == "/ui/jobs/sleeper/"
    assert flashed(response) == [f"Kill requested for execution {running.pk}"]
    running.refresh_from_db()
    assert running.kill_requested is True and running.status == "running"


def test_kill_of_a_queued_execution_kills_it_and_a_finished_one_is_a_message(client, admin_user):
    job = make_job("queued")
    queued = execution(job, status="queued")
    done = execution(job, status="success")
    client.force_login(admin_user)
    response = client.post(f"/ui/executions/{queued.pk}/kill/")
    assert flashed(response) == [f"Execution {queued.pk} killed"]
    queued.refresh_from_db()
    assert queued.status == "killed"
    response = client.post(f"/ui/executions/{done.pk}/kill/", follow=True)
    assert response.status_code == 200
    assert f"execution {done.pk} is not running" in response.content.decode()


# --- large values: the page shows their start and links to all of them ----------------------

BIG_COMMAND = "echo " + "a" * 1_500_000
MANY_KEYS = {f"key-{i:05}": f"value-{i}" for i in range(10_000)}


def show_all_links(page: str) -> list[str]:
    return [
        href.replace("&amp;", "&")
        for href in re.findall(r'<a href="([^"]+)" data-testid="show-all">', page)
    ]


def test_a_huge_command_and_ten_thousand_metadata_keys_keep_the_page_small(client, admin_user):
    make_job("huge", executor_config={"command": BIG_COMMAND}, metadata=MANY_KEYS)
    client.force_login(admin_user)
    page = client.get("/ui/jobs/huge/").content.decode()
    assert len(page) < 60_000  # the 1.5 MB command and 10,000 keys are not on the page
    summary = section(page, "job-summary")
    assert "echo aaaa" in summary and f"{len(BIG_COMMAND)} characters" in summary
    assert "key-00000=value-0" in summary and "key-09999" not in summary
    assert "9950 more" in summary
    links = show_all_links(page)
    assert "/ui/jobs/huge/full/config/?key=command" in links
    assert "/ui/jobs/huge/full/metadata/" in links


def test_the_full_values_load_on_demand_as_plain_text(client, admin_user):
    make_job(
        "huge",
        executor_config={"command": BIG_COMMAND, "env": "TOKEN=hunter2"},
        metadata=MANY_KEYS,
        tags={"role": "r" * 5000},
    )
    client.force_login(admin_user)
    command = client.get("/ui/jobs/huge/full/config/?key=command")
    assert command["Content-Type"].startswith("text/plain")
    assert command["X-Content-Type-Options"] == "nosniff"
    assert command.content.decode() == BIG_COMMAND
    assert json.loads(client.get("/ui/jobs/huge/full/metadata/").content) == MANY_KEYS
    assert json.loads(client.get("/ui/jobs/huge/full/tags/").content) == {"role": "r" * 5000}
    env = client.get("/ui/jobs/huge/full/config/?key=env").content.decode()
    assert "hunter2" not in env  # masked, as on the page
    assert client.get("/ui/jobs/huge/full/config/?key=nope").status_code == 404
    assert client.get("/ui/jobs/huge/full/password/").status_code == 404


def test_short_values_have_no_show_all_link(client, admin_user):
    make_job("small", metadata={"team": "data"})
    client.force_login(admin_user)
    assert show_all_links(client.get("/ui/jobs/small/").content.decode()) == []


def test_full_values_need_a_signed_in_user(client, db):
    make_job("private", executor_config={"command": BIG_COMMAND})
    assert client.get("/ui/jobs/private/full/config/?key=command").status_code == 302


def test_a_job_restored_with_problems_says_on_its_page_that_its_runs_fail_and_why(
    client, admin_user
):
    job_upsert(
        data={
            "name": "digest",
            "schedule": "@daily",
            "executor": "http",
            "executor_config": {"url": "{{url}}"},
        },
        keep_problems=True,
    )
    client.force_login(admin_user)

    page = client.get("/ui/jobs/digest/").content.decode()

    problems = section(page, "job-problems")
    assert "Every run of this job fails" in problems
    assert "executor_config.url" in problems and "{{url}}" in problems


def test_a_job_whose_executor_was_disabled_since_says_so_on_its_page(client, admin_user, settings):
    make_job("legacy")
    settings.DKRON = {**settings.DKRON, "DISABLED_EXECUTORS": {"shell"}}
    client.force_login(admin_user)

    page = client.get("/ui/jobs/legacy/").content.decode()

    assert "DKRON_DISABLED_EXECUTORS" in section(page, "job-problems")


def test_a_job_without_problems_shows_no_problem_section(client, admin_user):
    make_job("fine")
    client.force_login(admin_user)

    assert 'id="job-problems"' not in client.get("/ui/jobs/fine/").content.decode()
