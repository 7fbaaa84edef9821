"""A private Podman service with a Docker-compatible API and a local busybox image, for tests.

No Docker engine runs on the project's machines and no registry is reachable, so the session
starts `podman system service` on a unix socket in a temporary directory, with its own storage,
and imports an image built from the static busybox binary. Needs the Debian packages podman,
runc and busybox-static (see TESTING.md "Docker").
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import require

IMAGE = "localhost/dkronweb-busybox:test"
IMAGE_DEFAULT_OUTPUT = "image default command"
BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "cat", "echo", "env", "false", "id", "ls", "mkdir", "printf", "pwd", "rm"]
APPLETS += ["seq", "sleep", "test", "touch", "true", "wc", "[", "head", "tr"]

# crun does not work on these machines (TESTING.md); the file events logger needs no journald,
# netns=none needs no CNI/netavark setup, and the ulimits fit an unprivileged container runtime.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

INSTALL_HINT = "apt-get install -y podman runc busybox-static"


@dataclass
class Podman:
    """A running service: `url` goes in DOCKER_HOST; `client` lets tests look at containers."""

    url: str
    image: str
    client: Any
    dir: Path

    def containers(self, **labels: str) -> list[Any]:
        """All containers (running or not) carrying these labels."""
        wanted = [f"{k}={v}" for k, v in labels.items()]
        return list(self.client.containers.list(all=True, filters={"label": wanted}))


def _missing() -> str | None:
    if not shutil.which("podman"):
        return "podman"
    if not (shutil.which("runc") or Path("/usr/sbin/runc").exists()):
        return "runc"
    if not Path(BUSYBOX).exists():
        return f"{BUSYBOX} (busybox-static)"
    return None


def _rootfs_tar() -> bytes:
    """A minimal root filesystem: busybox, its applets as symlinks, /etc/passwd and /tmp."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        for name in ("bin", "etc", "root", "work"):
            add_dir(name)
        add_dir("tmp", 0o1777)
        add_file("bin/busybox", Path(BUSYBOX).read_bytes(), 0o755)
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        add_file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


class _Service:
    """Starts once per session however many test modules ask for it (reference counted)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.podman: Podman | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def acquire(self) -> Podman:
        with self.lock:
            if self.podman is None:
                self.podman = self._start()
            self.users += 1
            return self.podman

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0:
                self._stop()

    def _start(self) -> Podman:
        base = Path(tempfile.mkdtemp(prefix="dkronweb-podman-"))
        try:
            conf = base / "containers.conf"
            conf.write_text(CONTAINERS_CONF)
            env = {**os.environ, "CONTAINERS_CONF": str(conf)}
            env.pop("DOCKER_HOST", None)
            podman = [
                "podman",
                "--root",
                str(base / "root"),
                "--runroot",
                str(base / "run"),
                "--tmpdir",
                str(base / "tmp"),
                # vfs copies the 2 MB image per container and, unlike overlay, mounts nothing,
                # so removing the directory afterwards always works.
                "--storage-driver",
                "vfs",
            ]
            tar = base / "rootfs.tar"
            tar.write_bytes(_rootfs_tar())
            subprocess.run(
                [
                    *podman,
                    "import",
                    "--change",
                    f'CMD ["echo", "{IMAGE_DEFAULT_OUTPUT}"]',
                    str(tar),
                    IMAGE,
                ],
                env=env,
                check=True,
                capture_output=True,
                timeout=60,
            )
            sock = base / "api.sock"
            url = f"unix://{sock}"
            log = open(base / "service.log", "wb")  # noqa: SIM115 - closed when it stops
            self.proc = subprocess.Popen(
                [*podman, "system", "service", "--time=0", url],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            client = self._wait_ready(url, base)
            return Podman(url=url, image=IMAGE, client=client, dir=base)
        except BaseException:
            self._kill_service()
            shutil.rmtree(base, ignore_errors=True)
            raise

    def _wait_ready(self, url: str, base: Path) -> Any:
        import docker

        deadline = time.monotonic() + 30
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "podman system service exited:\n" + (base / "service.log").read_text()
                )
            if Path(url.removeprefix("unix://")).exists():
                with contextlib.suppress(docker.errors.DockerException):
                    client = docker.DockerClient(base_url=url, timeout=30)
                    client.ping()
                    return client
            if time.monotonic() > deadline:
                raise RuntimeError("podman system service did not answer within 30 s")
            time.sleep(0.05)

    def _kill_service(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def _stop(self) -> None:
        podman, self.podman = self.podman, None
        if podman is None:
            return
        with contextlib.suppress(Exception):
            for container in podman.client.containers.list(all=True):
                container.remove(force=True)
        with contextlib.suppress(Exception):
            podman.client.close()
        self._kill_service()
        shutil.rmtree(podman.dir, ignore_errors=True)


_service = _Service()


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    """The session's Podman service; skipped (failed under CI) when podman is not installed."""
    missing = _missing()
    require(missing is None, f"{missing} is not installed; install with: {INSTALL_HINT}")
    server = _service.acquire()
    try:
        yield server
    finally:
        _service.release()
