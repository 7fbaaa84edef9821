"""The job form: create, edit and clone through the API's own validation, with inline errors,
fields built from the executor's config schema, and write-only secrets."""

from __future__ import annotations

import re
from typing import Any

from jobs.models import Job
from jobs.services.jobs import job_upsert


def form_data(**overrides: Any) -> dict[str, Any]:
    """What a browser posts for a new shell job (the config fields shown for `shell`)."""
    data: dict[str, Any] = {
        "name": "greet",
        "displayname": "",
        "schedule": "0 30 9 * * mon-fri",
        "timezone": "Europe/Paris",
        "executor": "shell",
        "_config_executor": "shell",
        "config.command": "echo hello",
        "config.env": "",
        "config.cwd": "",
        "config.timeout": "",
        "owner": "",
        "owner_email": "",
        "retries": "0",
        "retry_backoff": "1",
        "concurrency": "allow",
        "parent_job": "",
        "misfire_policy": "skip",
        "catchup_window": "3600",
        "history_limit": "",
        "starts_at": "",
        "expires_at": "",
        "extra_json": "",
        "processors_json": "",
        "notify_json": "",
        "tags_key": ["role", ""],
        "tags_value": ["web:2", ""],
        "metadata_key": ["team", ""],
        "metadata_value": ["data", ""],
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def inline_error(page: str, name: str) -> str:
    """The error text of the `.field.invalid` that holds the input named `name`."""
    for block in re.findall(r'<div class="field invalid(?: wide)?"[^>]*>(.*?)\n</div>', page, re.S):
        if f'name="{name}"' in block:
            errors = re.findall(r'<p class="error">(.*?)</p>', block, re.S)
            assert errors, f"{name} is marked invalid without a message"
            return " ".join(errors)
    raise AssertionError(f"no inline error next to {name}")


def summary(page: str) -> str:
    match = re.search(r'<div id="form-errors"[^>]*role="alert"[^>]*>(.*?)</div>', page, re.S)
    assert match, "no error summary"
    return match.group(1)


def make_job(name: str, **fields: Any) -> Job:
    data: dict[str, Any] = {
        "name": name,
        "schedule": "@every 1h",
        "executor": "shell",
        "executor_config": {"command": "true"},
    }
    data.update(fields)
    return job_upsert(data=data)[0]


def test_the_new_job_form_shows_the_job_fields_and_the_shell_settings(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/ui/jobs/new/").content.decode()
    assert '<form id="job-form"' in page and ">Save</button>" in page
    for name in (
        "name",
        "displayname",
        "schedule",
        "timezone",
        "owner",
        "owner_email",
        "retries",
        "retry_backoff",
        "concurrency",
        "parent_job",
        "disabled",
        "ephemeral",
        "misfire_policy",
        "history_limit",
        "starts_at",
        "expires_at",
        "extra_json",
        "tags_key",
        "tags_value",
        "metadata_key",
        "metadata_value",
    ):
        assert f'name="{name}"' in page, name
    assert 'data-fields-url="/ui/executor-fields/"' in page
    assert 'data-fields-target="executor-fields"' in page
    assert '<option value="shell" selected>' in page
    fields = page.split('id="executor-fields"', 1)[1]
    assert 'name="config.command"' in fields and 'name="config.shell"' in fields
    assert re.search(r'<label for="config-command" class="required">', fields)
    assert 'type="checkbox" id="config-shell" name="config.shell"' in fields
    assert 'data-add-row="tags-row"' in page and '<template id="tags-row">' in page
    assert 'data-add-row="metadata-row"' in page


def test_creating_a_shell_job_saves_what_the_api_would_and_goes_to_its_page(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/ui/jobs/new/",
        form_data(**{"config.shell": "true", "config.timeout": "30s", "retries": "2"}),
    )
    assert response.status_code == 302
    assert response["Location"] == "/ui/jobs/greet/"
    job = Job.objects.get(name="greet")
    assert (job.schedule, job.timezone, job.executor, job.retries) == (
        "0 30 9 * * mon-fri",
        "Europe/Paris",
        "shell",
        2,
    )
    assert job.executor_config == {"command": "echo hello", "shell": True, "timeout": "30s"}
    assert job.tags == {"role": "web:2"} and job.metadata == {"team": "data"}
    assert job.next_run is not None
    page = client.get(response["Location"]).content.decode()
    assert "Job greet created" in page


def test_a_bad_cron_is_an_inline_error_on_schedule_and_nothing_is_stored(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/ui/jobs/new/", form_data(schedule="61 * * * * *"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "seconds field" in inline_error(page, "schedule")
    assert "Schedule" in summary(page)
    assert not Job.objects.filter(name="greet").exists()
    # What was typed stays in the form.
    assert 'value="greet"' in page and ">echo hello</textarea>" in page
    assert 'value="61 * * * * *"' in page


def test_an_unknown_executor_is_an_inline_error(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/ui/jobs/new/",
        form_data(executor="shel", _config_executor="shel", **{"config.command": None}),
    )
    assert response.status_code == 400
    assert "unknown executor 'shel'; did you mean 'shell'?" in inline_error(
        response.content.decode(), "executor"
    ).replace("&#x27;", "'")
    assert not Job.objects.exists()


def test_a_missing_required_config_key_is_an_inline_error_on_that_field(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/ui/jobs/new/", form_data(**{"config.command": ""}))
    assert response.status_code == 400
    page = response.content.decode()
    assert "Field required" in inline_error(page, "config.command")
    assert "command" in summary(page)
    assert not Job.objects.exists()


def test_a_bad_config_value_and_an_unknown_extra_key_are_shown_where_they_were_typed(
    client, admin_user
):
    client.force_login(admin_user)
    response = client.post(
        "/ui/jobs/new/",
        form_data(**{"config.timeout": "soon", "extra_json": '{"bogus": 1}'}),
    )
    page = response.content.decode()
    assert "invalid duration" in inline_error(page, "config.timeout")
    assert "bogus: unknown key" in inline_error(page, "extra_json")
    assert not Job.objects.exists()


def test_form_level_mistakes_are_caught_before_saving(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/ui/jobs/new/",
        form_data(retries="many", extra_json="{nope", tags_key=["", "x"], tags_value=["lost", ""]),
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert inline_error(page, "retries") and "not valid JSON" in inline_error(page, "extra_json")
    assert "has no key" in summary(page)
    assert not Job.objects.exists()


def test_the_form_saves_a_jitter_as_a_duration_and_refuses_a_bad_one(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/ui/jobs/new/", form_data(jitter="soon"))
    assert "jitter" in inline_error(response.content.decode(), "jitter")
    assert not Job.objects.filter(name="greet").exists()
    client.post("/ui/jobs/new/", form_data(jitter="1m30s"))
    assert Job.objects.get(name="greet").jitter == 90.0
    page = client.get("/ui/jobs/greet/edit/").content.decode()
    assert re.search(r'name="jitter"[^>]*value="90"', page)


def test_a_name_that_exists_is_not_overwritten_by_the_new_job_form(client, admin_user):
    make_job("greet", executor_config={"command": "original"})
    client.force_login(admin_user)
    response = client.post("/ui/jobs/new/", form_data())
    assert "already exists" in inline_error(response.content.decode(), "name")
    assert Job.objects.get(name="greet").executor_config == {"command": "original"}


def test_the_executor_fields_fragment_is_built_from_the_config_schema(client, admin_user):
    client.force_login(admin_user)
    fragment = client.get("/ui/executor-fields/?executor=rabbitmq").content.decode()
    assert "<html" not in fragment
    assert 'name="_config_executor" value="rabbitmq"' in fragment
    # Dkron's keys, required ones marked, help from the schema, one input type per field type.
    assert re.search(r'<label for="config-queue-name" class="required">', fragment)
    # The URL is a text field: only its password is secret, shown masked in the field.
    assert 'id="config-url" name="config.url" type="text"' in fragment
    assert 'type="checkbox" id="config-queue-create" name="config.queue.create"' in fragment
    assert 'name="config.message.delivery_mode" type="text"' in fragment
    assert "1 transient, 2 persistent, 0 unset." in fragment
    docker = client.get("/ui/executor-fields/?executor=docker").content.decode()
    assert '<select id="config-pull" name="config.pull"' in docker
    assert '<option value="always">always</option>' in docker
    assert '<textarea id="config-env" name="config.env"' in docker
    assert 'name="config.remove" value="true" checked' in docker  # defaults to true
    unknown = client.get("/ui/executor-fields/?executor=nope").content.decode()
    assert "not an available executor" in unknown


def test_change_executor_without_javascript_shows_the_new_fields_and_saves_nothing(
    client, admin_user
):
    client.force_login(admin_user)
    response = client.post(
        "/ui/jobs/new/", form_data(executor="http", _refresh="1", displayname="Keep me")
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="config.url"' in page and 'name="config.command"' not in page
    assert 'value="Keep me"' in page and 'value="role"' in page
    assert 'id="form-errors"' not in page
    assert not Job.objects.exists()
    # Saving with fields of another executor than the chosen one also just switches them.
    response = client.post("/ui/jobs/new/", form_data(executor="http"))
    assert 'name="config.url"' in response.content.decode()
    assert not Job.objects.exists()


def test_editing_keeps_the_name_and_a_stored_secret_that_is_left_empty(client, admin_user):
    make_job(
        "notify",
        executor="nats",
        executor_config={
            "url": "nats://q:4222",
            "subject": "s",
            "userName": "bob",
            "password": "hunter2",
        },
    )
    client.force_login(admin_user)
    page = client.get("/ui/jobs/notify/edit/").content.decode()
    assert "hunter2" not in page and "********" not in page
    assert re.search(r'name="name" value="notify"[^>]*readonly', page)
    assert 'id="config-password" name="config.password" type="password" value=""' in page
    assert "leave empty to keep the stored value" in page
    assert ">nats://q:4222</textarea>" in page
    data = form_data(
        name="renamed",
        executor="nats",
        _config_executor="nats",
        schedule="@every 2h",
        **{
            "config.url": "nats://q:4222",
            "config.subject": "s2",
            "config.userName": "bob",
            "config.password": "",
        },
    )
    del data["config.command"]
    response = client.post("/ui/jobs/notify/edit/", data)
    assert response.status_code == 302 and response["Location"] == "/ui/jobs/notify/"
    job = Job.objects.get(name="notify")
    assert not Job.objects.filter(name="renamed").exists()
    assert job.schedule == "@every 2h"
    assert job.executor_config == {
        "url": "nats://q:4222",
        "subject": "s2",
        "userName": "bob",
        "password": "hunter2",
    }
    # A new value replaces the secret.
    data["config.password"] = "s3cret"
    client.post("/ui/jobs/notify/edit/", data)
    assert Job.objects.get(name="notify").executor_config["password"] == "s3cret"


def test_a_failed_edit_never_echoes_a_secret(client, admin_user):
    make_job(
        "notify",
        executor="nats",
        executor_config={
            "url": "nats://q:4222",
            "subject": "s",
            "userName": "bob",
            "password": "hunter2",
        },
    )
    client.force_login(admin_user)
    data = form_data(
        executor="nats",
        _config_executor="nats",
        schedule="bad",
        **{
            "config.url": "nats://q:4222",
            "config.subject": "s",
            "config.userName": "bob",
            "config.password": "typed",
        },
    )
    page = client.post("/ui/jobs/notify/edit/", data).content.decode()
    assert "hunter2" not in page and "typed" not in page
    assert inline_error(page, "schedule")


def test_editing_keeps_processors_notify_and_dkron_style_string_values(client, admin_user):
    make_job(
        "legacy",
        executor_config={"command": "date", "shell": "true", "timeout": "30s"},
        processors={"log": {"forward": "true"}},
        notify={"on": "on_failure"},
    )
    client.force_login(admin_user)
    page = client.get("/ui/jobs/legacy/edit/").content.decode()
    assert 'name="config.shell" value="true" checked' in page
    assert 'value="30s"' in page
    post = {
        k: v
        for k, v in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page)
        if not k.startswith(("csrfmiddlewaretoken", "tags_", "metadata_"))
    }
    for name in ("config.command", "processors_json", "notify_json", "extra_json"):
        match = re.search(
            rf'<textarea[^>]*name="{re.escape(name)}"[^>]*>(.*?)</textarea>', page, re.S
        )
        assert match, name
        post[name] = match.group(1).strip().replace("&quot;", '"')
    post.update(concurrency="allow", misfire_policy="skip", executor="shell")
    post["config.shell"] = "true"
    response = client.post("/ui/jobs/legacy/edit/", post)
    assert response.status_code == 302, response.content.decode()
    job = Job.objects.get(name="legacy")
    assert job.processors == {"log": {"forward": "true"}} and job.notify == {"on": "on_failure"}
    assert job.executor_config == {"command": "date", "shell": True, "timeout": "30s"}


def test_clone_prefills_everything_but_the_name_and_the_secrets(client, admin_user):
    make_job(
        "original",
        displayname="Original",
        schedule="0 0 4 * * *",
        executor="nats",
        executor_config={
            "url": "nats://q:4222",
            "subject": "s",
            "userName": "bob",
            "password": "hunter2",
        },
        tags={"role": "web"},
    )
    client.force_login(admin_user)
    page = client.get("/ui/jobs/original/clone/").content.decode()
    assert 'action="/ui/jobs/new/"' in page
    assert re.search(r'name="name"[^>]*value=""', page) or 'name="name" value' not in page
    assert 'value="Original"' in page and 'value="0 0 4 * * *"' in page
    assert ">nats://q:4222</textarea>" in page and 'value="role"' in page
    assert "hunter2" not in page and "leave empty to keep" not in page
    # The name is required.
    data = form_data(
        name="",
        executor="nats",
        _config_executor="nats",
        **{
            "config.url": "nats://q:4222",
            "config.subject": "s",
            "config.userName": "bob",
            "config.password": "new-pass",
            "config.command": None,
        },
    )
    assert "required" in inline_error(client.post("/ui/jobs/new/", data).content.decode(), "name")
    data["name"] = "copy"
    assert client.post("/ui/jobs/new/", data).status_code == 302
    assert Job.objects.get(name="copy").executor_config == {
        "url": "nats://q:4222",
        "subject": "s",
        "userName": "bob",
        "password": "new-pass",
    }


def test_the_form_for_an_unknown_job_is_not_found(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/ui/jobs/nope/edit/").status_code == 404
    assert client.get("/ui/jobs/nope/clone/").status_code == 404


def test_change_executor_to_the_same_executor_keeps_what_was_typed(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/ui/jobs/new/", form_data(_refresh="1"))
    assert response.status_code == 200
    assert ">echo hello</textarea>" in response.content.decode()
    assert not Job.objects.exists()


def test_config_labels_come_from_the_schema_with_dkrons_key_beside_them(client, admin_user):
    client.force_login(admin_user)
    fragment = client.get("/ui/executor-fields/?executor=http").content.decode()
    # No title in the http schema: the key in words, acronyms as written.
    assert re.search(
        r'id="config-tlsNoVerifyPeer"[^>]*> TLS no verify peer <code[^>]*>tlsNoVerifyPeer</code>',
        fragment,
    )
    assert re.search(r'<label for="config-url" class="required">URL <code', fragment)
    assert "Tls no verify peer" not in fragment
