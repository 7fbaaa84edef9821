"""Creating a job: POST/PATCH /v1/jobs and PUT /v1/jobs/{name}, Dkron's upsert, `next`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.models import Execution, Job, Run
from tests.web.api.helpers import ZERO_TIME, add_agent, create, job_body, now, parse_time

pytestmark = pytest.mark.django_db

DKRON_JOB_KEYS = {
    "id", "name", "displayname", "timezone", "schedule", "owner", "owner_email",
    "success_count", "error_count", "last_success", "last_error", "disabled", "tags",
    "metadata", "retries", "dependent_jobs", "parent_job", "processors", "concurrency",
    "executor", "executor_config", "status", "next", "ephemeral", "starts_at", "expires_at",
}  # fmt: skip


def test_post_creates_a_job_and_answers_201_with_the_job_and_its_location(api):
    response = api.post("/v1/jobs", job_body("backup", owner="ops"), format="json")

    assert response.status_code == 201
    assert response["Location"] == "/v1/jobs/backup"
    body = response.json()
    assert body.keys() >= DKRON_JOB_KEYS
    assert body["id"] == body["name"] == "backup"
    assert body["schedule"] == "@every 1m"
    assert body["executor"] == "shell"
    assert body["executor_config"] == {"command": "echo hello"}
    assert body["owner"] == "ops"
    assert Job.objects.filter(name="backup").count() == 1


def test_a_new_job_has_dkron_defaults_for_everything_it_did_not_send(api):
    body = create(api, "defaults")

    assert body["displayname"] == ""
    assert body["timezone"] == ""
    assert body["disabled"] is False
    assert body["concurrency"] == "allow"
    assert body["retries"] == 0
    assert body["status"] == ""
    assert body["success_count"] == 0
    assert body["error_count"] == 0
    assert body["last_success"] is None
    assert body["last_error"] is None
    assert body["tags"] is None
    assert body["metadata"] is None
    assert body["dependent_jobs"] is None
    assert body["parent_job"] == ""
    assert body["processors"] == {}
    assert body["ephemeral"] is False
    assert body["starts_at"] is None
    assert body["expires_at"] is None


def test_the_created_job_reads_back_exactly_as_the_create_response(api):
    created = create(api, "echo", displayname="Echo", tags={"role": "web"}, metadata={"a": "b"})

    assert api.get("/v1/jobs/echo").json() == created


def test_patch_on_the_jobs_collection_creates_a_job_too(api):
    response = api.patch("/v1/jobs", job_body("patched"), format="json")

    assert response.status_code == 201
    assert response["Location"] == "/v1/jobs/patched"
    assert Job.objects.filter(name="patched").exists()


def test_the_trailing_slash_form_of_the_collection_is_accepted(api):
    response = api.post("/v1/jobs/", job_body("slashed"), format="json")

    assert response.status_code == 201


def test_put_creates_the_job_named_in_the_url(api):
    response = api.put("/v1/jobs/putjob", job_body("putjob"), format="json")

    assert response.status_code == 201
    assert response.json()["name"] == "putjob"
    assert Job.objects.filter(name="putjob").exists()


def test_put_writes_the_job_named_in_the_body_when_it_differs_from_the_url(api):
    response = api.put("/v1/jobs/foo", job_body("bar"), format="json")

    assert response.status_code == 201
    assert response["Location"] == "/v1/jobs/bar"
    assert list(Job.objects.values_list("name", flat=True)) == ["bar"]


def test_an_id_in_the_body_is_ignored_and_id_always_equals_name(api):
    body = create(api, "named", id="something-else")

    assert body["id"] == "named"


def test_dkron_string_values_in_executor_config_are_accepted(api):
    body = create(
        api, "strings", executor_config={"command": "echo $HOME", "shell": "true", "timeout": "30s"}
    )

    assert body["executor_config"] == {"command": "echo $HOME", "shell": "true", "timeout": "30s"}


def test_native_json_values_in_executor_config_are_accepted_as_well(api):
    body = create(api, "native", executor_config={"command": "echo", "shell": True})

    assert body["executor_config"]["shell"] is True


def test_numbers_and_booleans_in_tags_and_metadata_are_refused_as_dkron_refuses_them(api):
    # Both are map[string]string in Dkron; they were stored as strings before issue 11.
    for field, values in (("tags", {"rack": 7}), ("metadata", {"critical": False})):
        response = api.post("/v1/jobs", job_body("typed", **{field: values}), format="json")

        assert response.status_code == 400
        assert response.json()["error"].startswith("Unable to parse payload: json: cannot")
    assert not Job.objects.exists()


def test_a_null_map_is_the_same_as_an_empty_one(api):
    body = create(api, "nulls", tags=None, metadata=None, processors=None)

    assert body["tags"] is None
    assert body["metadata"] is None
    assert body["processors"] == {}


def test_a_created_job_does_not_run_without_runoncreate(api):
    create(api, "quiet")

    assert Run.objects.count() == 0


@pytest.mark.parametrize("query", ["?runoncreate", "?runoncreate=true", "?runoncreate=1"])
def test_runoncreate_starts_a_run_right_after_saving(api, query):
    response = api.post(f"/v1/jobs{query}", job_body("eager"), format="json")

    assert response.status_code == 201
    runs = Run.objects.filter(job__name="eager")
    assert runs.count() == 1
    assert runs.get().trigger == Run.Trigger.MANUAL
    # No agent is alive in these tests: the run fails at once, saying why.
    execution = Execution.objects.get(run=runs.get())
    assert execution.status == "failed"
    assert "no target nodes found" in execution.output
    assert response.json()["status"] == "failed"


def test_runoncreate_false_does_not_start_a_run(api):
    response = api.post("/v1/jobs?runoncreate=false", job_body("lazy"), format="json")

    assert response.status_code == 201
    assert Run.objects.count() == 0


def test_runoncreate_also_works_on_put(api):
    response = api.put("/v1/jobs/eager?runoncreate=true", job_body("eager"), format="json")

    assert response.status_code == 201
    assert Run.objects.filter(job__name="eager").count() == 1


def test_runoncreate_with_an_alive_agent_queues_an_execution_on_it(api):
    add_agent("agent-1")

    api.post("/v1/jobs?runoncreate", job_body("queued"), format="json")

    execution = Execution.objects.get(job__name="queued")
    assert execution.status == "queued"
    assert execution.node_name == "agent-1"


def test_next_is_the_real_next_fire_time_of_a_cron_schedule(api):
    before = now()
    body = create(api, "cron", schedule="0 30 * * * *")

    nxt = parse_time(body["next"])
    assert before < nxt <= before + timedelta(hours=1)
    assert (nxt.minute, nxt.second, nxt.microsecond) == (30, 0, 0)
    assert body["next"].endswith("Z")


def test_next_of_an_every_schedule_is_one_interval_from_now(api):
    before = now()
    body = create(api, "every", schedule="@every 10m")

    nxt = parse_time(body["next"])
    # Whole seconds, as Dkron rounds @every down to the second.
    assert nxt.microsecond == 0
    assert before + timedelta(minutes=10, seconds=-1) <= nxt <= now() + timedelta(minutes=10)


def test_next_is_dkron_zero_time_for_a_manually_job(api):
    assert create(api, "manual", schedule="@manually")["next"] == ZERO_TIME


def test_next_is_dkron_zero_time_for_a_child_job(api):
    create(api, "parent")

    child = create(api, "child", schedule="", parent_job="parent")

    assert child["next"] == ZERO_TIME


def test_a_child_job_with_a_schedule_is_not_scheduled_as_in_dkron(api):
    create(api, "parent")

    child = create(api, "child", schedule="@every 1m", parent_job="parent")

    assert child["next"] == ZERO_TIME
    assert Job.objects.get(name="child").next_run is None


def test_the_job_timezone_applies_to_a_descriptor(api):
    body = create(api, "nightly", schedule="@daily", timezone="America/New_York")

    nxt = parse_time(body["next"])
    # Midnight in New York is 05:00Z in winter and 04:00Z in summer.
    assert (nxt.hour, nxt.minute, nxt.second) in {(4, 0, 0), (5, 0, 0)}
    assert body["timezone"] == "America/New_York"


def test_the_job_timezone_applies_to_a_cron_spec(api):
    body = create(api, "berlin", schedule="0 0 9 * * *", timezone="Europe/Berlin")

    nxt = parse_time(body["next"])
    # 09:00 in Berlin is 08:00Z in winter and 07:00Z in summer.
    assert (nxt.hour, nxt.minute) in {(7, 0), (8, 0)}


def test_a_descriptor_without_a_timezone_uses_utc(api):
    nxt = parse_time(create(api, "utc", schedule="@daily")["next"])

    assert (nxt.hour, nxt.minute, nxt.second) == (0, 0, 0)


def test_next_is_never_before_a_future_starts_at(api):
    starts = (now() + timedelta(days=2)).replace(microsecond=0)

    body = create(api, "later", schedule="@hourly", starts_at=starts.isoformat())

    assert parse_time(body["next"]) >= starts
    assert parse_time(body["starts_at"]) == starts


def test_next_is_zero_time_when_the_job_has_already_expired(api):
    expired = now() - timedelta(days=1)

    body = create(
        api,
        "expired",
        starts_at=(expired - timedelta(days=1)).isoformat(),
        expires_at=expired.isoformat(),
    )

    assert body["next"] == ZERO_TIME


def test_starts_at_accepts_dkron_short_time_format(api):
    body = create(api, "short", starts_at="2099-01-02T15:04")

    assert body["starts_at"] == "2099-01-02T15:04:00Z"


def test_replace_concurrency_beyond_dkron_is_accepted(api):
    assert create(api, "replacing", concurrency="replace")["concurrency"] == "replace"


def test_the_location_of_a_unicode_name_is_percent_encoded(api):
    response = api.post("/v1/jobs", job_body("tâche"), format="json")

    assert response["Location"] == "/v1/jobs/t%C3%A2che"
    assert api.get(response["Location"]).json()["name"] == "tâche"


def test_a_tz_prefix_in_the_schedule_sets_the_zone_of_that_schedule(api):
    nxt = parse_time(create(api, "tokyo", schedule="TZ=Asia/Tokyo 0 0 12 * * *")["next"])

    assert (nxt.hour, nxt.minute) == (3, 0)  # noon in Tokyo (no DST) is 03:00Z


def test_the_local_timezone_is_accepted_as_the_server_zone(api):
    nxt = parse_time(create(api, "local", schedule="@daily", timezone="Local")["next"])

    assert (nxt.hour, nxt.minute) == (0, 0)  # the test server's zone is UTC


def test_next_of_a_future_at_schedule_is_that_time(api):
    body = create(api, "once", schedule="@at 2099-05-01T10:00:00Z")

    assert body["next"] == "2099-05-01T10:00:00Z"


def test_dkron_zero_time_for_starts_at_and_expires_at_means_not_set(api):
    body = create(api, "zero", starts_at=ZERO_TIME, expires_at=ZERO_TIME)

    assert body["starts_at"] is None
    assert body["expires_at"] is None
    assert parse_time(body["next"]) > now()


def test_durations_may_be_seconds_or_go_duration_strings(api):
    body = create(api, "durations", retry_backoff="1m30s", catchup_window=7200)

    assert body["retry_backoff"] == 90.0
    assert body["catchup_window"] == 7200.0


def test_jitter_is_a_duration_and_next_stays_the_scheduled_time(api):
    body = create(api, "jittered", schedule="0 0 * * * *", jitter="5m")

    assert body["jitter"] == 300.0
    nxt = parse_time(body["next"])
    assert (nxt.minute, nxt.second) == (0, 0)  # the schedule's time; the start is later
    job = Job.objects.get(name="jittered")
    assert nxt <= job.next_run < nxt + timedelta(minutes=5)
    assert api.get("/v1/jobs/jittered").json()["jitter"] == 300.0


def test_a_job_without_jitter_answers_zero(api):
    assert create(api, "steady")["jitter"] == 0.0


def test_a_cron_that_never_fires_has_zero_time_as_next(api):
    assert create(api, "never", schedule="0 0 0 30 2 *")["next"] == ZERO_TIME
