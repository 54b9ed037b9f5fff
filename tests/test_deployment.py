"""Deployment: the docker-compose topology as local processes, compose's own check, the real
image under a real Docker engine (where one runs), and many simulations on one host without a
port collision."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from neuroloop.client import EngineClient
from neuroloop.secret import new_secret
from neuroloop.simulation import Simulation
from tests.processes import FIXTURES, engine_processes

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENGINE_SERVICES = ("physics", "brain")
ADDRESS_VARIABLES = {
    "physics": "NEUROLOOP_PHYSICS_ADDRESS",
    "brain": "NEUROLOOP_BRAIN_ADDRESS",
}
"""The compose variables that set where each engine service binds."""
SECRET_PATH_VARIABLE = "NEUROLOOP_SECRET_PATH"
"""The compose variable that sets where the engine services read their secret."""
HEALTHY_WITHIN_S = 120.0
HEALTH_POLL_S = 0.5
REACH_TIMEOUT_S = 0.4
"""Simulated seconds of the reach simulation: 10 loop steps."""
CONCURRENT_SIMULATIONS = 50
DOCKER_IMAGE = "neuroloop:test"
"""The tag the Docker tests build (compose's NEUROLOOP_IMAGE), so they never replace the
user's neuroloop:0.1.0; Docker's layer cache makes a rebuild of unchanged code quick."""
DOCKER_BUILD_TIMEOUT_S = 3600.0
"""A first build downloads and installs TensorFlow, MuJoCo and MPICH."""
IMAGE_UID = 1000
"""The uid of the image's user neuroloop (Dockerfile)."""
ONE_SMALL_CYCLE = ("--cycles", "1", "-o", "Worlds=8", "-o", "Horizon=32", "-o", "PPO.Epochs=1")
"""Appended to the train service's command: one cycle of 2 x 8 worlds x 32 steps."""
LIST_PROCESSES = """
import pathlib
processes = {}
for proc in pathlib.Path("/proc").glob("[0-9]*"):
    fields = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines())
    command = (proc / "cmdline").read_bytes().replace(b"\\0", b" ").decode()
    processes[int(proc.name)] = (int(fields["PPid"]), *fields["Uid"].split()[:2], command)
tree = {1}
while grown := {pid for pid, (ppid, *_) in processes.items() if ppid in tree} - tree:
    tree |= grown
for pid in sorted(tree):
    print(*processes[pid][1:])
"""
"""Prints the real and effective uid and the command line of the container's PID 1 and its
descendants: the service's processes, not those of a concurrent ``docker exec`` (this one, a
health check, whose runtime starts as root before it switches to the image's user)."""
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${NAME}`` and ``${NAME:-default}`` (the default also for an empty value)."""
    return _VARIABLE.sub(lambda m: variables.get(m["name"]) or m["default"] or "", text)


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def local_command(arguments: list[str], variables: Mapping[str, str]) -> list[str]:
    """A service's command as run here: the image's ``neuroloop`` and ``python`` are ours."""
    executables = {
        "neuroloop": str(Path(sys.executable).parent / "neuroloop"),
        "python": sys.executable,
    }
    command = [interpolate(str(argument), variables) for argument in arguments]
    return [executables.get(command[0], command[0]), *command[1:]]


def service_environment(service: Mapping[str, Any], variables: Mapping[str, str]) -> dict[str, str]:
    declared = {
        key: interpolate(str(value), variables) for key, value in service["environment"].items()
    }
    return {**os.environ, **declared}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def wait_healthy(name: str, check: list[str], process: subprocess.Popen[bytes]) -> None:
    """Run the service's health check until it passes, like ``condition: service_healthy``."""
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    while subprocess.run(check, capture_output=True).returncode != 0:
        assert process.poll() is None, f"service {name} exited with status {process.returncode}"
        assert time.monotonic() < deadline, f"service {name} not healthy in {HEALTHY_WITHIN_S} s"
        time.sleep(HEALTH_POLL_S)


def test_compose_topology_as_local_processes_runs_the_reach_simulation(tmp_path: Path) -> None:
    services = compose_services()
    assert set(services) >= {*ENGINE_SERVICES, "orchestrator"}
    assert services["orchestrator"]["depends_on"] == {
        name: {"condition": "service_healthy"} for name in ENGINE_SERVICES
    }
    addresses = {name: f"127.0.0.1:{free_port()}" for name in ENGINE_SERVICES}
    secret_file = tmp_path / "neuroloop_engine_secret"
    secret_file.write_text(new_secret() + "\n")
    variables = {
        **{ADDRESS_VARIABLES[name]: addresses[name] for name in ENGINE_SERVICES},
        SECRET_PATH_VARIABLE: str(secret_file),
    }
    engines: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ENGINE_SERVICES:
            service = services[name]
            command = local_command(service["command"], variables)
            assert command[-2:] == ["--address", addresses[name]]
            with (tmp_path / f"{name}.log").open("wb") as log:
                engines[name] = subprocess.Popen(
                    command,
                    env=service_environment(service, variables),
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        for name in ENGINE_SERVICES:
            test = services[name]["healthcheck"]["test"]
            assert test[0] == "CMD"
            wait_healthy(name, local_command(test[1:], variables), engines[name])

        orchestrator = services["orchestrator"]
        run = subprocess.run(
            [
                *local_command(orchestrator["command"], variables),
                *[
                    item
                    for name in ENGINE_SERVICES
                    for item in (
                        "-o",
                        f"EngineConfigs.EngineName:{name}.ServerAddress={addresses[name]}",
                        "-o",
                        f"EngineConfigs.EngineName:{name}.EngineSecretFile={secret_file}",
                    )
                ],
                *("-o", f"SimulationTimeout={REACH_TIMEOUT_S}", "--quiet"),
            ],
            env=service_environment(orchestrator, variables),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        assert "simulation   shadow_hand_reach" in run.stdout
        assert f"simulated    {REACH_TIMEOUT_S:.3f} s in 10 loop steps" in run.stdout
        assert "ended by     SimulationTimeout" in run.stdout
        # The orchestrator shut both engines down: like their containers, they exit 0.
        for name, process in engines.items():
            assert process.wait(30) == 0, (tmp_path / f"{name}.log").read_text()
    finally:
        for process in engines.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert [group_members(process.pid) for process in engines.values()] == [[], []]


def test_health_check_fails_where_nothing_serves() -> None:
    check = subprocess.run(
        [sys.executable, "-m", "neuroloop.healthcheck", f"0.0.0.0:{free_port()}", "--timeout", "1"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1
    assert "UNAVAILABLE" in check.stderr


def compose_cli() -> list[str] | None:
    """``docker compose`` (the plugin) or the standalone ``docker-compose``, if installed."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_docker_compose_config_accepts_the_file() -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip(
            "neither the docker compose plugin nor docker-compose is installed here "
            "(the docker client alone cannot check a compose file)"
        )
    for profile in ((), ("--profile", "train")):
        checked = subprocess.run(
            [*cli, "--file", str(COMPOSE), *profile, "config"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("NEUROLOOP_")},
        )
        assert checked.returncode == 0, checked.stderr
        resolved = yaml.safe_load(checked.stdout)["services"]
        assert set(resolved) >= {*ENGINE_SERVICES, "orchestrator", *(["train"] if profile else [])}
        assert resolved["physics"]["command"][-1] == "0.0.0.0:9001"
        assert resolved["brain"]["command"][-1] == "0.0.0.0:9002"


def docker_unavailable() -> str | None:
    """Why the Docker tests cannot run here, or None: a client, a compose and an engine."""
    if shutil.which("docker") is None:
        return "the docker client is not installed here"
    if compose_cli() is None:
        return "neither the docker compose plugin nor docker-compose is installed here"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "no Docker engine answers here (docker info did not answer in 60 s)"
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers here (docker info: {reason})"
    return None


def base_image_missing() -> str | None:
    """Why the Dockerfile's base image is out of reach, or None (present, or pulled now)."""
    base = next(
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("FROM ")
    )
    if subprocess.run(["docker", "image", "inspect", base], capture_output=True).returncode == 0:
        return None
    try:
        pulled = subprocess.run(
            ["docker", "pull", base], capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired:
        reason = "docker pull did not end in 600 s"
    else:
        if pulled.returncode == 0:
            return None
        reason = (pulled.stderr.strip().splitlines() or ["no output"])[-1]
    return (
        f"the base image {base} is not here and cannot be pulled ({reason}); where no container "
        "registry is reachable, build a local stand-in for it first"
    )


Compose = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    """Builds the image once, then runs docker compose commands on a project of this test.

    The project directory is a temporary one holding the engine secret, so nothing is written
    into the source tree; its containers, network and volumes are removed at the end.
    """
    reason = docker_unavailable() or base_image_missing()
    if reason:
        pytest.skip(reason)
    cli = compose_cli()
    assert cli is not None
    build = subprocess.run(
        ["docker", "build", "--network", "host", "-t", DOCKER_IMAGE, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=DOCKER_BUILD_TIMEOUT_S,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    project = tmp_path_factory.mktemp("compose")
    (project / "neuroloop_engine_secret").write_text(new_secret() + "\n")
    (project / "neuroloop_engine_secret").chmod(0o644)
    base = [
        *cli,
        *("--file", str(COMPOSE), "--project-directory", str(project)),
        *("--project-name", f"neurolooptest{os.getpid()}", "--profile", "train"),
    ]
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEUROLOOP_")},
        "NEUROLOOP_IMAGE": DOCKER_IMAGE,
    }

    def run(*arguments: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *arguments],
            capture_output=True,
            text=True,
            cwd=project,
            env=environment,
            timeout=timeout,
        )

    try:
        yield run
    finally:
        run("down", "--volumes", "--remove-orphans", "--timeout", "5")


def container_of(compose: Compose, service: str) -> str:
    listed = compose("ps", "-q", service)
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.strip()


def docker(*arguments: str) -> str:
    result = subprocess.run(["docker", *arguments], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_compose_services_run_unprivileged_and_the_reach_simulation_ends(
    compose: Compose,
) -> None:
    started = compose("up", "--detach", "--no-build", *ENGINE_SERVICES)
    assert started.returncode == 0, started.stderr
    containers = {name: container_of(compose, name) for name in ENGINE_SERVICES}
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    for name, container in containers.items():
        while docker("inspect", "--format", "{{.State.Health.Status}}", container) != "healthy":
            assert time.monotonic() < deadline, f"service {name} not healthy in time"
            time.sleep(HEALTH_POLL_S)
        # Every process of the service: its real and effective uid.
        listed = compose("exec", "-T", name, "python", "-c", LIST_PROCESSES)
        assert listed.returncode == 0, listed.stderr
        processes = [line.split(None, 2) for line in listed.stdout.splitlines()]
        assert any("neuroloop engine" in command for _, _, command in processes), processes
        assert {(int(uid), int(euid)) for uid, euid, _ in processes} == {(IMAGE_UID, IMAGE_UID)}

    run = compose("up", "--no-build", "--exit-code-from", "orchestrator", "orchestrator")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "ended by     SimulationTimeout" in run.stdout
    # The orchestrator shut both engines down: their containers end by themselves, status 0.
    for name, container in containers.items():
        assert docker("wait", container) == "0", f"service {name}"


def test_train_profile_with_two_workers_completes_a_cycle_under_default_seccomp(
    compose: Compose,
) -> None:
    resolved = compose("config")
    assert resolved.returncode == 0, resolved.stderr
    train = yaml.safe_load(resolved.stdout)["services"]["train"]
    # Nothing loosens the container's confinement for MPI.
    assert not {"cap_add", "privileged", "security_opt"} & set(train), train
    command = [str(argument) for argument in train["command"]]
    assert command[command.index("--workers") + 1] == "2"
    # The kernel applies Docker's seccomp filter to the service's processes (mode 2).
    status = compose("run", "--rm", "--no-deps", "-T", "train", "cat", "/proc/self/status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"^Seccomp:\s+2$", status.stdout, re.MULTILINE), status.stdout

    trained = compose(
        "run", "--rm", "--no-deps", "-T", "train", *command, *ONE_SMALL_CYCLE, timeout=900
    )
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert "(2 process(es))" in trained.stdout + trained.stderr
    # The run, in the service's volume, is the unprivileged user's.
    run_dir = command[command.index("--run-dir") + 1]
    owner = compose("run", "--rm", "--no-deps", "-T", "train", "stat", "-c", "%u", run_dir)
    assert owner.stdout.split() == [str(IMAGE_UID)], owner.stdout + owner.stderr
    progress = compose(
        "run", "--rm", "--no-deps", "-T", "train", "cat", f"{run_dir}/progress.jsonl"
    )
    assert progress.returncode == 0, progress.stderr
    records = [json.loads(line) for line in progress.stdout.splitlines() if line.startswith("{")]
    assert [record["cycle"] for record in records] == [1]


def test_cross_memory_attach_is_what_the_default_seccomp_profile_refuses(
    compose: Compose,
) -> None:
    """The control: the same image with MPICH's cross-memory attach on (the wheel's default)
    fails its first large MPI_Bcast, so the image's MPIR_CVAR_CH4_CMA_ENABLE=0 is what makes
    the train profile work."""
    broadcast = (
        "import numpy as np; from mpi4py import MPI; "
        "a = np.full(1 << 20, MPI.COMM_WORLD.rank, np.float64); MPI.COMM_WORLD.Bcast(a); "
        "assert not a.any(); print('broadcast')"
    )
    mpiexec = ["train", "mpiexec", "-n", "2", "python", "-c", broadcast]
    as_built = compose("run", "--rm", "--no-deps", "-T", *mpiexec, timeout=300)
    assert as_built.returncode == 0, as_built.stderr
    assert as_built.stdout.split() == ["broadcast", "broadcast"]
    with_cma = compose(
        "run", "--rm", "--no-deps", "-T", "-e", "MPIR_CVAR_CH4_CMA_ENABLE=1", *mpiexec, timeout=300
    )
    assert with_cma.returncode != 0, with_cma.stdout
    assert "MPI_Bcast" in with_cma.stdout + with_cma.stderr, with_cma.stderr


def test_fifty_simulations_at_once_get_their_own_addresses(tmp_path: Path) -> None:
    """Every engine binds port 0 (or its own Unix socket) and announces what it bound."""
    start_together = threading.Barrier(CONCURRENT_SIMULATIONS)

    def simulate(index: int) -> tuple[list[str], int, int]:
        overrides = [
            f"EngineConfigs.EngineName:{name}.{key}=120"
            for name in ("fast", "slow")
            for key in ("EngineLaunchTimeout", "EngineCommandTimeout")
        ]
        if index % 2:  # every other simulation's engines serve on Unix-domain sockets
            overrides += [
                f"EngineConfigs.EngineName:{name}.ServerAddress=unix:{tmp_path}/{index}-{name}.sock"
                for name in ("fast", "slow")
            ]
        simulation = Simulation.from_config(
            FIXTURES / "exchange.json", overrides, echo_engine_output=False
        )
        start_together.wait()
        with simulation as sim:
            sim.run_until_timeout()
            addresses = []
            for client in sim.clients.values():
                assert isinstance(client, EngineClient)
                addresses.append(client.address)
            steps = (int(sim.datapack("steps", "fast")), int(sim.datapack("steps", "slow")))
        return addresses, *steps

    with ThreadPoolExecutor(CONCURRENT_SIMULATIONS) as pool:
        results = list(pool.map(simulate, range(CONCURRENT_SIMULATIONS)))
    addresses = [address for found, _, _ in results for address in found]
    assert len(addresses) == 2 * CONCURRENT_SIMULATIONS
    assert len(set(addresses)) == len(addresses), "two engines were given the same address"
    assert sum(address.startswith("unix:") for address in addresses) == CONCURRENT_SIMULATIONS
    assert all(re.fullmatch(r"unix:.+|127\.0\.0\.1:\d+", address) for address in addresses)
    # exchange.json: 0.06 s of 0.01 s steps for "fast", 0.02 s steps for "slow".
    assert {(fast, slow) for _, fast, slow in results} == {(6, 3)}
    assert engine_processes(os.getpid()) == []
