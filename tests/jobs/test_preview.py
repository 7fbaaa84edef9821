"""Schedule previews (jobs.preview): the next fire times in the zone and in UTC, with DST
changes, the wall time a spring-forward gap swallows, calendar skips and jitter marked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs import preview
from jobs.errors import DomainError
from jobs.models import Job
from jobs.services.calendars import calendar_upsert

START = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)


def draft(**fields) -> Job:
    return Job(
        **{"name": "draft", "schedule": "0 30 2 * * *", "timezone": "Europe/Berlin", **fields}
    )


def test_a_spring_forward_marks_the_change_and_the_time_that_does_not_happen(db):
    answer = preview.fires(draft(), count=4, now=START)
    assert answer["timezone"] == "Europe/Berlin"
    assert [f["utc"] for f in answer["fires"]] == [
        "2026-03-28T01:30:00Z",
        "2026-03-30T00:30:00Z",
        "2026-03-31T00:30:00Z",
        "2026-04-01T00:30:00Z",
    ]
    assert answer["fires"][0]["local"] == "2026-03-28T02:30:00+01:00"
    assert answer["fires"][0]["dst"] is None
    after = answer["fires"][1]
    assert after["local"] == "2026-03-30T02:30:00+02:00"
    assert after["dst"] == "starts"
    assert after["skipped"] == [
        {
            "utc": None,
            "local": "2026-03-29T02:30:00",
            "reason": "02:30:00 does not exist on 2026-03-29 (DST starts)",
        }
    ]


def test_every_wall_time_a_spring_forward_swallows_is_listed(db):
    """Found by an outside tester: with fires at :00 and :30 only 02:00 was listed."""
    answer = preview.fires(draft(schedule="0 */30 * 29 3 *"), count=6, now=START)
    after = next(f for f in answer["fires"] if f["dst"] == "starts")
    assert [s["local"] for s in after["skipped"]] == ["2026-03-29T02:00:00", "2026-03-29T02:30:00"]


def test_a_fall_back_says_a_fixed_hour_fires_once(db):
    answer = preview.fires(draft(), count=2, now=datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    first, second = answer["fires"]
    assert first["local"] == "2026-10-25T02:30:00+02:00"  # the first of the two 02:30s
    assert second["dst"] == "ends"
    assert "02:30:00 happens twice and fires once" in second["dst_note"]


def test_a_holiday_is_shown_as_skipped_before_the_next_fire(db):
    calendar_upsert(name="holidays", data={"timezone": "Europe/Berlin", "dates": ["2026-03-31"]})
    answer = preview.fires(draft(exclude_calendars=["holidays"]), count=3, now=START)
    locals_ = [f["local"][:10] for f in answer["fires"]]
    assert locals_ == ["2026-03-28", "2026-03-30", "2026-04-01"]
    skipped = answer["fires"][2]["skipped"]
    assert skipped == [
        {
            "utc": "2026-03-31T00:30:00Z",
            "local": "2026-03-31T02:30:00+02:00",
            "reason": "missed: excluded by calendar 'holidays'",
        }
    ]


def test_jitter_gives_each_fire_its_stable_offset(db):
    one = preview.fires(draft(jitter=60.0), count=3, now=START)
    again = preview.fires(draft(jitter=60.0), count=3, now=START)
    assert [f["jitter"] for f in one["fires"]] == [f["jitter"] for f in again["fires"]]
    assert all(0 <= f["jitter"] < 60 for f in one["fires"])


def test_a_manual_job_and_a_past_at_have_no_fires(db):
    assert preview.fires(draft(schedule="@manually"), count=3, now=START)["fires"] == []
    past = preview.fires(draft(schedule="@at 2020-01-01T00:00:00Z"), count=3, now=START)
    assert past["fires"] == [] and past["note"] == "it will not fire again"


def test_a_bad_schedule_and_a_bad_count_name_their_field(db):
    with pytest.raises(DomainError) as caught:
        preview.fires(draft(schedule="0 30 2 * *"), count=3, now=START)
    assert "schedule" in caught.value.details
    for bad in ("0", "101", "ten", -1, True):
        with pytest.raises(DomainError) as caught:
            preview.clean_count(bad)
        assert "count" in caught.value.details
    assert preview.clean_count(None) == 10
    assert preview.clean_count("25") == 25
