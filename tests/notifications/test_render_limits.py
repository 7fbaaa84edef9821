"""Templates written by an editor cannot make an agent allocate or spin without bound.

The attacks of issue 12, finding 8: a width filter asking for 400 million characters, nested
loops, output multiplied by loops; each stops at the limit, and the notification fails with a
clear message while the agent goes on.
"""

from __future__ import annotations

import tracemalloc

import pytest

from jobs.models import Job
from jobs.notifications import render
from jobs.services.notifications import notify_run
from tests.notifications.test_notify_run import hook, make_job, settled_run
from tests.notifications.test_render import context
from tests.web.api.helpers import assert_error, job_body

NESTED_EMPTY_LOOPS = (
    "{% with s=job.name|make_list %}"
    "{% for a in s %}{% for b in s %}{% for c in s %}{% for d in s %}"
    "{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endwith %}"
)
NESTED_OUTPUT_LOOPS = (
    "{% with s=job.name|make_list %}"
    "{% for a in s %}{% for b in s %}{% for c in s %}{{ job.name }}"
    "{% endfor %}{% endfor %}{% endfor %}{% endwith %}"
)


@pytest.fixture
def limits(settings):  # type: ignore[no-untyped-def]
    settings.DKRON = {**settings.DKRON, "NOTIFY_RENDER_LIMIT": 65536, "NOTIFY_RENDER_TIME": 0.2}


def test_a_huge_literal_width_is_refused_when_the_job_is_saved(api):
    notify = {
        "webhooks": [{"url": "http://hooks.test/x", "body": '{{ job.name|ljust:"400000000" }}'}]
    }

    body = assert_error(api.post("/v1/jobs", job_body("j", notify=notify), format="json"), 400)

    assert "400000000" in str(body) and "webhooks.0.body" in str(body)
    assert not Job.objects.filter(name="j").exists()


@pytest.mark.parametrize("filter_", ["rjust", "center", "stringformat", "floatformat", "wordwrap"])
def test_every_sized_filter_is_checked_at_save_time(filter_):
    arg = "0900000000d" if filter_ == "stringformat" else "900000000"
    with pytest.raises(render.RenderLimit, match="900000000"):
        render.check_template(f'{{{{ job.name|{filter_}:"{arg}" }}}}')


def test_a_width_read_from_a_variable_is_refused_before_anything_is_allocated(limits):
    source = "{{ job.name|ljust:job.metadata.width }}"
    render.check_template(source)  # nothing literal to refuse when saved
    tracemalloc.start()
    try:
        with pytest.raises(render.RenderLimit, match="size limit"):
            render.render(source, context(metadata={"width": "5000000"}))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 1_000_000


def test_nested_loops_stop_at_the_cpu_time_limit(limits):
    with pytest.raises(render.RenderLimit, match="CPU"):
        render.render(NESTED_EMPTY_LOOPS, context(name="x" * 40))


def test_output_multiplied_by_loops_stops_at_the_size_limit(limits):
    tracemalloc.start()
    try:
        with pytest.raises(render.RenderLimit, match="65536 characters"):
            render.render(NESTED_OUTPUT_LOOPS, context(name="y" * 60))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 2_000_000  # a few times the limit, not the 13 MB the loops ask for


def test_a_list_doubled_by_add_stops_at_the_size_limit(limits):
    opens = "{% with v0=executions %}" + "".join(
        f"{{% with v{i}=v{i - 1}|add:v{i - 1} %}}" for i in range(1, 19)
    )
    source = opens + "{{ v18|length }}" + "{% endwith %}" * 19

    with pytest.raises(render.RenderLimit, match="add"):
        render.render(source, context())


def test_ordinary_templates_still_render(limits):
    out = render.render(
        '{{ job.name|ljust:"12" }}|{% for e in executions %}{{ e.node }} {% endfor %}', context()
    )

    assert out == "backup-db   |node-a node-b "


@pytest.mark.django_db
def test_an_over_limit_template_fails_its_notification_and_nothing_is_sent(
    receiver, notify_settings, limits
):
    job = make_job(
        name="y" * 60,
        notify={"on": "always", "webhooks": [hook(receiver, body=NESTED_OUTPUT_LOOPS)]},
    )

    [outcome] = notify_run(run_id=settled_run(job, "failed").pk)

    assert not outcome.ok and "DKRON_NOTIFY_RENDER_LIMIT" in outcome.error
    assert receiver.requests == []
