"""The production shape (docker-compose.yml and its Dockerfile), checked without a Docker engine.

No Docker engine runs where the tests run, so these tests read the files: the services and how
they depend on each other, health checks, restart policies and volumes; that every command they
name exists (``agglo`` subcommands and options in the click group, the gunicorn config and WSGI
module, ``python -m`` modules, npm's lock file); that every ``AGGLO_*`` variable is a real
setting with a well-formed value; that the Dockerfile's build context holds what it copies and
that the installed package carries its data files. ``docker compose config`` runs too where a
Docker CLI with the compose plugin is installed (it needs no daemon).
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from cli.main import cli
from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
GUNICORN_CONF = ROOT / "web" / "gunicorn.conf.py"

APP_SERVICES = ("migrate", "web", "worker")  # the services that run our image
LONG_RUNNING = ("db", "mail", "web", "worker")
# Commands of the base images and the shell, which are not ours to check.
EXTERNAL_COMMANDS = {"sh", "[", "test", "pg_isready", "/mailpit", "groupadd", "useradd"}
SHELL_KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}"}
SHELL_OPERATORS = {"&&", "||", ";", ";;", "|", "&", "(", ")"}
# AGGLO_* variables that are not Settings fields, and who reads them.
COMPOSE_ONLY = {"AGGLO_LOAD_DEMO": "the migrate service's command"}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# -- reading the files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict) and isinstance(document.get("services"), dict), "no services in the file"
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


@dataclasses.dataclass
class Instruction:
    stage: int
    keyword: str
    args: str

    def flags(self) -> dict[str, str]:
        return dict(re.findall(r"--(\w[\w-]*)=(\S+)", self.args))

    def words(self) -> list[str]:
        """The arguments without ``--flag=value``: JSON (exec) form or whitespace separated."""
        text = self.args.strip()
        if text.startswith("["):
            return [str(w) for w in json.loads(text)]
        return [w for w in text.split() if not w.startswith("--")]


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, each with its stage number."""
    joined: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    instructions: list[Instruction] = []
    stage = -1
    for line in joined:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword.upper(), args.strip()))
    return instructions


def stage_names(instructions: list[Instruction]) -> dict[str, int]:
    names = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.words()
            if len(words) == 3 and words[1].lower() == "as":
                names[words[2]] = ins.stage
    return names


def dockerignore() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out (Docker's rules: last match wins, ``!`` re-includes)."""

    def match(candidate: str, pattern: str) -> bool:
        if pattern.startswith("**/"):
            segments = candidate.split("/")
            return any(fnmatch.fnmatchcase("/".join(segments[i:]), pattern[3:]) for i in range(len(segments)))
        return fnmatch.fnmatchcase(candidate, pattern)

    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = (raw[1:] if negate else raw).strip("/")
        if any(match(prefix, pattern) for prefix in prefixes):
            result = not negate
    return result


# -- commands ------------------------------------------------------------------------------------


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script (split at operators, without shell keywords)."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in SHELL_OPERATORS:
            commands.append([])
        elif token in SHELL_KEYWORDS and not commands[-1]:
            continue
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def argvs(value: Any, *, compose_escapes: bool = True) -> list[list[str]]:
    """The commands a compose ``command``/``entrypoint``/healthcheck ``test`` or a Dockerfile line runs."""
    if value is None:
        return []
    if isinstance(value, str):
        return shell_commands(value.replace("$$", "$") if compose_escapes else value)
    words = [str(w) for w in value]
    if words and words[0] in ("CMD", "NONE"):
        words = words[1:]
    elif words and words[0] == "CMD-SHELL":
        return argvs(" ".join(words[1:]), compose_escapes=compose_escapes)
    if len(words) >= 3 and words[0] in ("sh", "/bin/sh", "bash") and words[1] == "-c":
        script = words[2].replace("$$", "$") if compose_escapes else words[2]
        return shell_commands(script)
    return [words] if words else []


def compose_commands(services: dict[str, dict[str, Any]]) -> Iterator[tuple[str, list[str]]]:
    for name, service in services.items():
        for key in ("entrypoint", "command"):
            for argv in argvs(service.get(key)):
                yield f"{name}.{key}", argv
        for argv in argvs((service.get("healthcheck") or {}).get("test")):
            yield f"{name}.healthcheck", argv


def dockerfile_commands() -> Iterator[tuple[str, list[str]]]:
    for ins in dockerfile():
        if ins.keyword == "RUN":
            for argv in argvs(ins.args, compose_escapes=False):
                yield "RUN", argv
        elif ins.keyword in ("CMD", "ENTRYPOINT"):
            for argv in argvs(json.loads(ins.args) if ins.args.startswith("[") else ins.args, compose_escapes=False):
                yield ins.keyword, argv


def option_names(command: click.Command) -> dict[str, click.Parameter]:
    names: dict[str, click.Parameter] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in (*param.opts, *param.secondary_opts):
                names[opt] = param
    return names


def check_agglo(argv: list[str]) -> None:
    """``agglo ...``: every subcommand exists in the click group and every option on its command."""
    command: click.Command = cli
    args = argv[1:]
    arguments = 0
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--help":
            return
        if token.startswith("-"):
            options = option_names(command)
            name = token.split("=", 1)[0]
            assert name in options, f"`{' '.join(argv)}`: {command.name} has no option {name}"
            param = options[name]
            if not (isinstance(param, click.Option) and param.is_flag) and "=" not in token:
                i += 1  # the option's value
        elif isinstance(command, click.Group):
            sub = command.commands.get(token)
            assert sub is not None, f"`{' '.join(argv)}`: no command {token!r} in {sorted(command.commands)}"
            command = sub
        else:
            arguments += 1
            declared = [p for p in command.params if isinstance(p, click.Argument)]
            assert arguments <= len(declared), f"`{' '.join(argv)}`: {command.name} takes no argument {token!r}"
        i += 1
    assert not isinstance(command, click.Group), f"`{' '.join(argv)}` names a group, not a command"


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def check_gunicorn(argv: list[str], cwd: Path = ROOT) -> None:
    config = argv[argv.index("-c") + 1] if "-c" in argv else None
    assert config is not None, f"`{' '.join(argv)}` does not name web/gunicorn.conf.py"
    assert (cwd / config).is_file(), f"gunicorn config {config} does not exist"
    apps = [a for a in argv[1:] if ":" in a and not a.startswith("-")]
    assert len(apps) == 1, f"`{' '.join(argv)}` names no WSGI app"
    module, attribute = apps[0].split(":")
    spec = importlib.util.find_spec(module)  # found, not imported: importing creates the app and opens a database
    assert spec is not None and spec.origin, f"WSGI module {module} does not exist"
    tree = ast.parse(Path(spec.origin).read_text())
    assigned = {
        t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)
    }
    assert attribute in assigned, f"{module} assigns no {attribute}"
    assert module_exists("gunicorn"), "gunicorn is not installed"


def check_python(argv: list[str]) -> None:
    if "-m" in argv:
        module = argv[argv.index("-m") + 1]
        assert module_exists(module), f"`{' '.join(argv)}`: no module {module}"
    elif "-c" in argv:
        compile(argv[argv.index("-c") + 1], "<python -c>", "exec")
    else:
        raise AssertionError(f"`{' '.join(argv)}`: python runs neither -m nor -c")


def check_command(where: str, argv: list[str]) -> None:
    program = PurePosixPath(argv[0]).name if argv[0].startswith("/opt/") else argv[0]
    if program == "agglo":
        check_agglo(argv)
    elif program == "gunicorn":
        check_gunicorn(argv)
    elif program in ("python", "python3"):
        check_python(argv)
    elif program == "npm":
        assert argv[1] == "ci", f"{where}: `{' '.join(argv)}` (the image installs exactly the lock file: npm ci)"
        assert (ROOT / "package.json").is_file() and (ROOT / "package-lock.json").is_file()
    elif program == "pip":
        assert argv[1:3] == ["install", "."], f"{where}: `{' '.join(argv)}`"
        assert (ROOT / "pyproject.toml").is_file()
    else:
        assert program in EXTERNAL_COMMANDS, f"{where}: unknown command `{' '.join(argv)}`"


# -- the compose file ----------------------------------------------------------------------------


def test_the_services_of_the_production_shape_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"db", "mail", "migrate", "web", "worker"}
    assert str(services["db"]["image"]).startswith("postgres:16")
    assert "mailpit" in str(services["mail"]["image"])
    for name in APP_SERVICES:
        assert services[name].get("build") in (".", {"context": "."}), f"{name} is not built from the Dockerfile"
        assert services[name]["image"] == services["web"]["image"], f"{name} runs another image"


def test_the_services_start_in_order(services: dict[str, dict[str, Any]]) -> None:
    def conditions(name: str) -> dict[str, str]:
        depends = services[name].get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a list"
        return {dep: spec.get("condition") for dep, spec in depends.items()}

    assert conditions("migrate") == {"db": "service_healthy"}
    for name in ("web", "worker"):
        assert conditions(name).get("db") == "service_healthy", name
        assert conditions(name).get("migrate") == "service_completed_successfully", name
    assert conditions("worker").get("mail") in ("service_started", "service_healthy")
    for name, service in services.items():
        for dep in service.get("depends_on") or {}:
            assert dep in services, f"{name} depends on a service that does not exist: {dep}"


def test_health_checks_and_restart_policies(services: dict[str, dict[str, Any]]) -> None:
    for name in ("db", "web", "worker"):
        health = services[name].get("healthcheck") or {}
        assert health.get("test") and not health.get("disable"), f"{name} has no health check"
    assert argvs(services["db"]["healthcheck"]["test"])[0][0] == "pg_isready"
    assert argvs(services["worker"]["healthcheck"]["test"]) == [["agglo", "db", "check"]]
    for name in LONG_RUNNING:
        assert services[name].get("restart") in ("unless-stopped", "always"), f"{name} is not restarted"
    # The migrations run once: a restart policy would run them in a loop.
    assert services["migrate"].get("restart") in (None, "no")


def test_the_database_keeps_its_data_in_a_named_volume(compose: dict[str, Any]) -> None:
    mounts = [str(v) for v in compose["services"]["db"].get("volumes") or []]
    named = {m.split(":")[0] for m in mounts if m.endswith(":/var/lib/postgresql/data")}
    assert named, "PostgreSQL's data directory is not a volume"
    assert named <= set(compose.get("volumes") or {}), "the data volume is not declared"


def test_the_migrations_run_on_start(services: dict[str, dict[str, Any]]) -> None:
    commands = argvs(services["migrate"]["command"])
    assert ["agglo", "db", "upgrade"] in commands
    # The demo data only on request.
    assert ["agglo", "demo"] in commands
    assert "AGGLO_LOAD_DEMO" in str(services["migrate"]["command"])
    assert str(environment(services["migrate"])["AGGLO_LOAD_DEMO"]).endswith(":-0}")


def test_the_web_app_runs_under_gunicorn_and_its_health_check_names_a_real_route(
    services: dict[str, dict[str, Any]],
) -> None:
    from engine.clock import VirtualClock
    from engine.engine import Engine
    from engine.memory import MemoryStore
    from web.app import create_app

    web = services["web"]
    assert argvs(web["command"]) == [["gunicorn", "-c", "web/gunicorn.conf.py", "web.wsgi:app"]]
    test = web["healthcheck"]["test"]
    urls = re.findall(r"https?://[^'\"\s]+", " ".join(map(str, test)))
    assert len(urls) == 1, f"the web health check names no URL: {test}"
    url = urlsplit(urls[0])
    bind = str(environment(web).get("AGGLO_BIND", "0.0.0.0:8000"))
    assert url.port == int(bind.rsplit(":", 1)[1]), "the health check asks another port than gunicorn binds"
    published = {str(p).rsplit(":", 1)[1] for p in web.get("ports") or []}
    assert published == {str(url.port)}, "the published port is not the one gunicorn binds"

    settings = Settings(secret_key="compose-test-" + "x" * 32)
    app = create_app(settings, Engine(MemoryStore(), VirtualClock(datetime(2026, 1, 12, 9, tzinfo=UTC))))
    endpoint, _ = app.url_map.bind("localhost").match(url.path, method="GET")
    assert endpoint.endswith("healthz"), endpoint
    assert app.test_client().get(url.path).status_code == 200


def test_every_command_named_exists(services: dict[str, dict[str, Any]]) -> None:
    named = [*compose_commands(services), *dockerfile_commands()]
    programs = {argv[0] for _, argv in named}
    assert {"agglo", "gunicorn", "python", "npm"} <= programs, programs
    for where, argv in named:
        check_command(where, argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["agglo", "db", "upgrad"],
        ["agglo", "db"],
        ["agglo", "workers"],
        ["agglo", "worker", "--forever"],
        ["gunicorn", "-c", "web/gunicorn.conf.py", "web.wsgi:application"],
        ["gunicorn", "-c", "web/gunicorn.py", "web.wsgi:app"],
        ["gunicorn", "-c", "web/gunicorn.conf.py", "web.wsgx:app"],
        ["python", "-m", "web.asset"],
        ["pg_isready_now"],
    ],
)
def test_the_command_checks_catch_a_wrong_command(argv: list[str]) -> None:
    with pytest.raises(AssertionError):
        check_command("test", argv)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) if v is not None else "" for k, v in env.items()}


def resolved(value: str, given: dict[str, str]) -> str:
    """Interpolate like compose with only ``given`` set: ``${X:-default}`` gives the default."""

    def one(m: re.Match[str]) -> str:
        name, kind, word = m.group(1), m.group(2), m.group(3)
        if name in given:
            return given[name]
        assert kind in (":-", "-"), f"${{{name}}} has no default and is not set"
        return word or ""

    return INTERPOLATION.sub(one, value)


def gunicorn_variables() -> set[str]:
    return set(re.findall(r"os\.environ\.get\(\s*[\"'](AGGLO_\w+)[\"']", GUNICORN_CONF.read_text()))


def test_every_agglo_variable_is_a_real_setting_with_a_well_formed_value(
    services: dict[str, dict[str, Any]],
) -> None:
    settings = {f"AGGLO_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    gunicorn = gunicorn_variables()
    assert {"AGGLO_BIND", "AGGLO_WEB_WORKERS", "AGGLO_WEB_THREADS"} <= gunicorn
    known = settings | gunicorn | set(COMPOSE_ONLY)
    text = COMPOSE.read_text()
    named = set(re.findall(r"\bAGGLO_[A-Z0-9_]+", text))
    assert "AGGLO_DATABASE_URL" in named
    unknown = named - known
    assert not unknown, f"not settings (engine/settings.py) nor read by web/gunicorn.conf.py: {sorted(unknown)}"
    required = {"POSTGRES_PASSWORD": "pw", "AGGLO_SECRET_KEY": "s" * 48}
    for name in APP_SERVICES:
        env = {k: resolved(v, required) for k, v in environment(services[name]).items()}
        assert set(env) <= known
        Settings.from_env(env)  # raises on a malformed value (an int, float or boolean that is not)
        for variable in set(env) & gunicorn:
            if variable != "AGGLO_BIND" and variable.endswith(("WORKERS", "THREADS", "TIMEOUT")):
                int(env[variable])
    assert "AGGLO_BIND" in environment(services["web"])


def test_the_app_services_are_wired_to_the_db_and_mail_services(services: dict[str, dict[str, Any]]) -> None:
    required = {"POSTGRES_PASSWORD": "pw", "AGGLO_SECRET_KEY": "s" * 48}
    db = {k: resolved(v, required) for k, v in environment(services["db"]).items()}
    for name in APP_SERVICES:
        env = environment(services[name])
        assert re.fullmatch(r"\$\{AGGLO_SECRET_KEY:\?[^}]+\}", env["AGGLO_SECRET_KEY"]), "the secret key is required"
        settings = Settings.from_env({k: resolved(v, required) for k, v in env.items()})
        url = urlsplit(settings.database_url)
        assert url.scheme == "postgresql" and url.hostname == "db" and url.port in (None, 5432), name
        assert url.username == db["POSTGRES_USER"] and url.password == db["POSTGRES_PASSWORD"], name
        assert url.path == "/" + db["POSTGRES_DB"], name
        assert settings.smtp_host == "mail" and settings.smtp_port == 1025, name
    assert ["pg_isready", "-U", db["POSTGRES_USER"], "-d", db["POSTGRES_DB"]] in argvs(
        services["db"]["healthcheck"]["test"]
    )


def test_the_interpolation_check_catches_a_missing_default() -> None:
    with pytest.raises(AssertionError):
        resolved("${AGGLO_SECRET_KEY:?set it}", {})
    assert resolved("${AGGLO_SMTP_PORT:-1025}", {}) == "1025"


# -- the Dockerfile and its build context --------------------------------------------------------


def test_the_dockerfile_builds_assets_in_a_node_stage_and_runs_python_311_as_a_non_root_user() -> None:
    instructions = dockerfile()
    froms = [ins.words()[0] for ins in instructions if ins.keyword == "FROM"]
    assert len(froms) >= 2 and froms[0].startswith("node:"), froms
    assert froms[-1].startswith("python:3.11"), froms
    final = max(ins.stage for ins in instructions)
    users = [ins.words()[0] for ins in instructions if ins.stage == final and ins.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image runs as root"
    runs = [argv for where, argv in dockerfile_commands() if where == "RUN"]
    npm = [argv for argv in runs if argv[0] == "npm"]
    assert npm and all("--include=dev" not in argv for argv in npm)
    pips = [i for i, argv in enumerate(runs) if PurePosixPath(argv[0]).name == "pip"]
    assets = [i for i, argv in enumerate(runs) if argv[:3] == ["python", "-m", "web.assets"]]
    assert pips and assets and assets[0] < pips[0], "web/static/vendor must be filled before the package is installed"
    assert all(runs[i] == [runs[i][0], "install", "."] for i in pips), "no dev extras in the image"


def test_the_dockerfile_command_is_the_web_service_command(services: dict[str, dict[str, Any]]) -> None:
    cmd = [ins for ins in dockerfile() if ins.keyword == "CMD"]
    assert cmd and cmd[-1].words() == list(services["web"]["command"])


def test_the_gunicorn_config_is_where_the_command_looks_for_it() -> None:
    instructions = dockerfile()
    final = max(ins.stage for ins in instructions)
    workdir = [ins.words()[0] for ins in instructions if ins.stage == final and ins.keyword == "WORKDIR"]
    assert workdir, "the runtime stage sets no WORKDIR"
    copied = set()
    for ins in instructions:
        if ins.stage == final and ins.keyword == "COPY" and "from" not in ins.flags():
            destination = PurePosixPath(workdir[-1]) / ins.words()[-1]
            copied.add(str(destination))
    cmd = [ins for ins in instructions if ins.keyword == "CMD"][-1].words()
    config = cmd[cmd.index("-c") + 1]
    assert str(PurePosixPath(workdir[-1]) / config) in copied, f"{config} is not copied into {workdir[-1]}"


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    instructions = dockerfile()
    stages = stage_names(instructions)
    patterns = dockerignore()
    sources: set[str] = set()
    for ins in instructions:
        if ins.keyword != "COPY":
            continue
        origin = ins.flags().get("from")
        if origin is not None:
            assert origin in stages and stages[origin] < ins.stage, f"COPY --from={origin}: no earlier stage"
            continue
        for source in ins.words()[:-1]:
            path = source.rstrip("/") or "."
            assert (ROOT / path).exists(), f"COPY {source}: does not exist"
            assert not ignored(path, patterns), f"COPY {source}: left out of the build context by .dockerignore"
            sources.add(path)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= {p.split(".")[0] for p in pyproject["tool"]["setuptools"]["packages"]}
    assert needed <= sources, f"`pip install .` needs {sorted(needed - sources)} in the build stage"


def test_the_build_context_leaves_out_local_state_and_secrets() -> None:
    patterns = dockerignore()
    for path in (
        ".git",
        ".venv",
        "node_modules",
        "web/static/vendor",
        ".agglo-secret",
        ".env",
        "agglo.db",
        "agglo.db-wal",
        "web/__pycache__/app.cpython-311.pyc",
        "tests/unit",
    ):
        assert ignored(path, patterns), f"{path} would be sent into the image build"
    assert not ignored("web/app.py", patterns)
    assert not ignored("web/templates/base.html", patterns)


def test_the_installed_package_carries_its_data_files() -> None:
    """The image installs the package (not editable): every data file must be in package-data."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages: list[str] = setuptools["packages"]
    data: dict[str, list[str]] = setuptools.get("package-data", {})
    roots = {p.split(".")[0] for p in packages}
    missing = []
    for root in sorted(roots):
        for path in sorted((ROOT / root).rglob("*")):
            relative = path.relative_to(ROOT)
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in relative.parts:
                continue
            owner = max((p for p in packages if relative.parent.as_posix().startswith(p.replace(".", "/"))), key=len)
            base = ROOT / owner.replace(".", "/")
            if not any(path in set(base.glob(pattern)) for pattern in data.get(owner, [])):
                missing.append(relative.as_posix())
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
    for required in ("cli/reference/municipalities.csv", "storage/alembic.ini", "web/templates/base.html"):
        assert (ROOT / required).is_file(), required


# -- docker compose config, where the compose plugin is installed --------------------------------


def docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [docker, "compose"] if probe.returncode == 0 else None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    command = docker_compose()
    if command is None:
        pytest.skip(
            "`docker compose config` needs Docker's Compose v2 plugin, which is not installed here (Debian "
            "bookworm packages only Compose v1, which rejects the Compose-spec `name` key); the file's "
            "structure is checked by the other tests of this module"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGGLO_", "POSTGRES_", "COMPOSE_"))}
    env["HOME"] = str(tmp_path)
    empty = tmp_path / "empty.env"  # not a developer's .env next to the file
    empty.write_text("")
    base = [*command, "--env-file", str(empty), "--project-directory", str(ROOT), "-f", str(COMPOSE)]
    base += ["config", "--quiet"]
    ok = subprocess.run(
        base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**env, "POSTGRES_PASSWORD": "pw", "AGGLO_SECRET_KEY": "s" * 48},
    )
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run(
        base, capture_output=True, text=True, timeout=60, check=False, env={**env, "POSTGRES_PASSWORD": "pw"}
    )
    assert missing.returncode != 0 and "AGGLO_SECRET_KEY" in missing.stderr
