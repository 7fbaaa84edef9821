"""The data directory (SQLite database, its -wal and -shm, the embedded secret key) is created
owner-only, and start-up warns about one that other users can read (issue 12, finding 4).
`tests/e2e/test_data_dir.py` stats what a real `manage.py serve` left there."""

from __future__ import annotations

import stat

from tests.operations.settings_process import clean_env, manage


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_data_dir_and_its_files_are_created_owner_only(tmp_path):
    data = tmp_path / "new" / "var"  # neither exists yet

    result = manage("check", env=clean_env(data))

    assert result.returncode == 0, result.stdout
    assert mode(tmp_path / "new") == 0o700 and mode(data) == 0o700
    assert {p.name for p in data.iterdir()} >= {"dkronweb.sqlite3", "secret_key", "static"}
    for path in data.iterdir():
        assert mode(path) & 0o077 == 0, f"{path.name} is {mode(path):04o}"
    assert "dkron.W003" not in result.stdout


def test_a_world_readable_database_is_warned_about_in_the_log_and_by_the_check(tmp_path):
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    database = data / "dkronweb.sqlite3"
    database.touch(mode=0o644)
    database.chmod(0o644)

    result = manage("check", env=clean_env(data))

    assert "WARNING dkronweb the data directory or database is readable by other users" in (
        result.stdout
    )
    assert "(dkron.W003)" in result.stdout
    assert f"{data} (0755)" in result.stdout and f"{database} (0644)" in result.stdout
    assert mode(database) == 0o644  # warned about, not changed behind the operator's back
