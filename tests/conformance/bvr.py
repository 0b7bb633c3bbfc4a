"""Drive Particle's own ``binary-version-reader`` (npm, pinned to 3.1.3) from Python.

The conformance tests compare ``bluemule.image`` with the reference implementation
Particle ships. This module installs that package (``ensure_installed``) and talks to
it through ``bvr_server.js``, a long-lived Node.js process speaking line-delimited JSON
(``BinaryVersionReader``).

Failures of the JavaScript library come back as ``BvrError`` carrying its message;
problems with the harness itself (no Node.js, npm failing, the server dying) raise
``BvrSetupError``. Neither is ever turned into a skip: a CI job without Node.js is
misconfigured and must fail.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self

__all__ = [
    "BVR_VERSION",
    "DEVICE_CONSTANTS_VERSION",
    "BinaryVersionReader",
    "Bundle",
    "BvrError",
    "BvrSetupError",
    "NamedBlob",
    "default_cache_dir",
    "ensure_installed",
]

BVR_VERSION: Final = "3.1.3"
DEVICE_CONSTANTS_VERSION: Final = "4.2.1"

HERE: Final = Path(__file__).resolve().parent
SERVER_JS: Final = HERE / "bvr_server.js"
PACKAGE_JSON: Final = HERE / "package.json"
PACKAGE_LOCK: Final = HERE / "package-lock.json"

_MARKER: Final = ".bluemule-bvr-installed"
_NPM_FLAGS: Final = (
    "--no-audit",
    "--no-fund",
    "--ignore-scripts",  # nothing in the tree needs a build step; don't run foreign code
    "--engine-strict=false",  # @particle/device-os-protobuf 2.9.0 claims node>=22.18 but works
    "--update-notifier=false",
)
_STDERR_TAIL_LINES: Final = 40


class BvrError(RuntimeError):
    """``binary-version-reader`` (or the bridge) rejected a request.

    ``str(err)`` is the JavaScript error message; ``js_name`` its ``Error.name``
    (``"RangeError"``, ``"Error"``, ``"BadRequest"`` for malformed requests, ...).
    """

    def __init__(self, message: str, *, op: str = "", js_name: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.op = op
        self.js_name = js_name


class BvrSetupError(RuntimeError):
    """The harness could not install or run ``binary-version-reader``."""


@dataclass(frozen=True, slots=True)
class NamedBlob:
    """A named piece of binary data: an application or an asset in a bundle."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Bundle:
    """What ``unpackApplicationAndAssetBundle`` found in a zip bundle."""

    application: NamedBlob | None
    assets: list[NamedBlob]
    # {"name": "env/…json", "data": <parsed JSON>} when the bundle carries env vars.
    vars: dict[str, Any] | None = None


# ---------------------------------------------------------------------------
# Installation


def default_cache_dir() -> Path:
    """``$BLUEMULE_NPM_CACHE`` if set, else ``~/.cache/bluemule/bvr-<version>``."""
    env = os.environ.get("BLUEMULE_NPM_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "bluemule" / f"bvr-{BVR_VERSION}"


def _installed_version(cache_dir: Path, package: str) -> str | None:
    manifest = cache_dir / "node_modules" / package / "package.json"
    try:
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None
    return version if isinstance(version, str) else None


def _spec_digest() -> str:
    digest = hashlib.sha256()
    for path in (PACKAGE_JSON, PACKAGE_LOCK):
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if path.exists() else b"<absent>")
    return digest.hexdigest()


def _is_installed(cache_dir: Path, digest: str) -> bool:
    try:
        marker = (cache_dir / _MARKER).read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return (
        marker == digest
        and _installed_version(cache_dir, "binary-version-reader") == BVR_VERSION
        and _installed_version(cache_dir, "@particle/device-constants") == DEVICE_CONSTANTS_VERSION
    )


@contextlib.contextmanager
def _install_lock(cache_dir: Path) -> Iterator[None]:
    """Serialise installs into one cache directory (e.g. pytest-xdist workers)."""
    if sys.platform == "win32":
        yield
        return
    import fcntl  # noqa: PLC0415  (POSIX only)

    with (cache_dir / ".install.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _require_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BvrSetupError(
            f"`{name}` is not on PATH: the conformance tests need Node.js (>= 20) and npm "
            f"to run Particle's binary-version-reader {BVR_VERSION}. Install them; these "
            "tests fail rather than skip without them."
        )
    return found


def ensure_installed(cache_dir: Path | None = None) -> Path:
    """Install the pinned ``binary-version-reader`` into ``cache_dir`` and return it.

    ``cache_dir`` defaults to ``default_cache_dir()``. ``package.json`` and (when
    present) ``package-lock.json`` are copied there and ``npm ci`` (``npm install``
    without a lock) runs with ``--no-audit --no-fund --ignore-scripts``. Nothing is run
    when the cache already holds an install made from the same package files with the
    expected versions. Raises ``BvrSetupError`` when Node.js/npm are missing or npm fails.
    """
    target = (cache_dir if cache_dir is not None else default_cache_dir()).expanduser()
    target = target.resolve()
    _require_tool("node")
    npm = _require_tool("npm")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BvrSetupError(f"cannot create npm cache directory {target}: {exc}") from exc

    digest = _spec_digest()
    if _is_installed(target, digest):
        return target
    with _install_lock(target):
        if _is_installed(target, digest):  # another process got there first
            return target
        (target / _MARKER).unlink(missing_ok=True)
        shutil.copyfile(PACKAGE_JSON, target / "package.json")
        lock = target / "package-lock.json"
        if PACKAGE_LOCK.exists():
            shutil.copyfile(PACKAGE_LOCK, lock)
            command = [npm, "ci", *_NPM_FLAGS]
        else:
            lock.unlink(missing_ok=True)
            command = [npm, "install", *_NPM_FLAGS]
        try:
            done = subprocess.run(
                command,
                cwd=target,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BvrSetupError(f"`{' '.join(command)}` in {target} failed: {exc}") from exc
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
            raise BvrSetupError(
                f"`{' '.join(command)}` in {target} exited with {done.returncode}:\n{tail}"
            )
        for package, expected in (
            ("binary-version-reader", BVR_VERSION),
            ("@particle/device-constants", DEVICE_CONSTANTS_VERSION),
        ):
            found = _installed_version(target, package)
            if found != expected:
                raise BvrSetupError(
                    f"npm installed {package} {found or '(nothing)'} in {target}, "
                    f"expected {expected}"
                )
        (target / _MARKER).write_text(digest + "\n", encoding="utf-8")
    return target


# ---------------------------------------------------------------------------
# Client


def _b64(data: bytes) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise BvrSetupError(f"malformed reply: {what} is {type(value).__name__}, not base64")
    return base64.b64decode(value, validate=True)


def _blob_arg(blob: NamedBlob | tuple[str, bytes]) -> dict[str, str]:
    name, data = (blob.name, blob.data) if isinstance(blob, NamedBlob) else blob
    return {"name": name, "data": _b64(data)}


def _blob_result(value: object, what: str) -> NamedBlob:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise BvrSetupError(f"malformed reply: {what} is {value!r}")
    return NamedBlob(value["name"], _unb64(value.get("data"), f"{what}.data"))


def _data_field(result: object, op: str) -> bytes:
    if not isinstance(result, dict):
        raise BvrSetupError(f"malformed reply to {op}: {result!r}")
    return _unb64(result.get("data"), f"{op} result.data")


class BinaryVersionReader:
    """A Node.js process running ``bvr_server.js`` over the installed package.

    Use as a context manager (or call ``start``/``close``). Calls are serialised;
    the process is restarted on the next call if it died. Every method sends bytes
    and gets bytes or plain JSON-derived dicts back; a failure inside
    ``binary-version-reader`` raises ``BvrError`` and leaves the server usable.
    """

    def __init__(
        self,
        install_dir: Path | None = None,
        *,
        node: str = "node",
        op_timeout: float = 10.0,
        reply_timeout: float | None = None,
    ) -> None:
        """``install_dir``: where ``ensure_installed`` put node_modules (installs if None).

        ``op_timeout`` bounds each request inside the server (it replies with an error);
        ``reply_timeout`` (default ``op_timeout + 20``) bounds the wait for any reply,
        after which the process is killed.
        """
        self._install_dir = install_dir
        self._node = node
        self._op_timeout = op_timeout
        self._reply_timeout = reply_timeout if reply_timeout is not None else op_timeout + 20.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
        self._threads: list[threading.Thread] = []
        self._next_id = 0
        self._lock = threading.RLock()  # start() issues a request itself

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (installing the package first if no install_dir was given)."""
        if self.running:
            return
        self._reap()
        if self._install_dir is None:
            self._install_dir = ensure_installed()
        node = shutil.which(self._node) or _require_tool(self._node)
        env = dict(os.environ, BVR_OP_TIMEOUT_MS=str(max(1, round(self._op_timeout * 1000))))
        try:
            proc = subprocess.Popen(
                [node, str(SERVER_JS), str(self._install_dir)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise BvrSetupError(f"cannot start {node} {SERVER_JS}: {exc}") from exc
        self._proc = proc
        self._replies = queue.Queue()
        self._stderr.clear()
        assert proc.stdout is not None
        assert proc.stderr is not None
        self._threads = [
            threading.Thread(
                target=self._pump_stdout, args=(proc.stdout,), name="bvr-stdout", daemon=True
            ),
            threading.Thread(
                target=self._pump_stderr, args=(proc.stderr,), name="bvr-stderr", daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()
        version = self.version()
        if version.get("binaryVersionReader") != BVR_VERSION:
            self.close()
            raise BvrSetupError(
                f"{self._install_dir} holds binary-version-reader "
                f"{version.get('binaryVersionReader')}, expected {BVR_VERSION}"
            )

    def close(self) -> None:
        """Stop the server: close its stdin, wait briefly, kill if needed, close pipes."""
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._reap()

    def _reap(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for thread in self._threads:
            thread.join(timeout=5)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._threads = []
        self._proc = None

    def _pump_stdout(self, pipe: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in pipe:
                self._replies.put(line)
        self._replies.put(None)

    def _pump_stderr(self, pipe: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in pipe:
                self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr (library warnings, stray errors)."""
        return "\n".join(self._stderr)

    def _died(self, what: str) -> BvrSetupError:
        proc = self._proc
        code = proc.poll() if proc is not None else None
        tail = self.stderr_tail()
        self._reap()
        detail = f" (exit status {code})" if code is not None else ""
        return BvrSetupError(
            f"bvr_server.js {what}{detail}" + (f"; stderr:\n{tail}" if tail else "")
        )

    # -- generic request ---------------------------------------------------

    def call(self, op: str, args: Mapping[str, Any] | None = None) -> Any:
        """Send one raw request and return its ``result`` (JSON value) or raise BvrError."""
        with self._lock:
            if not self.running:
                self.start()
            proc = self._proc
            assert proc is not None
            assert proc.stdin is not None
            self._next_id += 1
            request_id = self._next_id
            line = json.dumps({"id": request_id, "op": op, "args": dict(args or {})})
            try:
                proc.stdin.write(line.encode("utf-8") + b"\n")
                proc.stdin.flush()
            except OSError as exc:
                raise self._died(f"stopped accepting requests ({exc})") from exc
            while True:
                try:
                    raw = self._replies.get(timeout=self._reply_timeout)
                except queue.Empty:
                    raise self._died(
                        f"sent no reply to {op} within {self._reply_timeout:g} s; killed it"
                    ) from None
                if raw is None:
                    raise self._died(f"exited while handling {op}")
                try:
                    reply = json.loads(raw)
                except ValueError:
                    self._stderr.append("unparsable stdout line: " + raw[:200].decode("latin-1"))
                    continue
                if not isinstance(reply, dict) or reply.get("id") != request_id:
                    continue  # a reply to an unparsable line or an older request
                break
        if reply.get("ok") is True:
            return reply.get("result")
        raise BvrError(
            str(reply.get("error", "unknown error")),
            op=op,
            js_name=str(reply.get("errorName", "")),
        )

    # -- operations --------------------------------------------------------

    def version(self) -> dict[str, str]:
        """Versions of binary-version-reader, @particle/device-constants and Node.js."""
        result = self.call("version")
        if not isinstance(result, dict):
            raise BvrSetupError(f"malformed reply to version: {result!r}")
        return {str(k): str(v) for k, v in result.items()}

    def parse(self, data: bytes) -> dict[str, Any]:
        """``new HalModuleParser().parseBuffer({fileBuffer: data})``, JSON-normalised.

        Keys: ``crc``, ``prefixInfo``, ``suffixInfo`` and, when present, ``assets`` and
        ``security``; ``fileBuffer`` is dropped. Buffers (extension ``data``,
        ``certificate``) are lowercase hex strings; every other value is what the
        library produced (addresses as unpadded hex strings, ``-1`` product fields...).
        """
        result = self.call("parse", {"data": _b64(data)})
        if not isinstance(result, dict):
            raise BvrSetupError(f"malformed reply to parse: {result!r}")
        return result

    def compress_module(self, data: bytes) -> bytes:
        return _data_field(self.call("compressModule", {"data": _b64(data)}), "compressModule")

    def decompress_module(self, data: bytes) -> bytes:
        return _data_field(self.call("decompressModule", {"data": _b64(data)}), "decompressModule")

    def unwrap_asset_module(self, data: bytes) -> bytes:
        return _data_field(
            self.call("unwrapAssetModule", {"data": _b64(data)}), "unwrapAssetModule"
        )

    def combine_modules(self, modules: Sequence[bytes]) -> bytes:
        result = self.call("combineModules", {"modules": [_b64(m) for m in modules]})
        return _data_field(result, "combineModules")

    def split_combined_modules(self, data: bytes) -> list[bytes]:
        result = self.call("splitCombinedModules", {"data": _b64(data)})
        if not isinstance(result, dict) or not isinstance(result.get("modules"), list):
            raise BvrSetupError(f"malformed reply to splitCombinedModules: {result!r}")
        return [_unb64(m, "splitCombinedModules module") for m in result["modules"]]

    def create_asset_module(self, data: bytes, name: str, *, compress: bool = True) -> bytes:
        result = self.call(
            "createAssetModule", {"data": _b64(data), "name": name, "compress": compress}
        )
        return _data_field(result, "createAssetModule")

    def update_module_asset_dependencies(
        self, data: bytes, assets: Sequence[NamedBlob | tuple[str, bytes]]
    ) -> bytes:
        result = self.call(
            "updateModuleAssetDependencies",
            {"data": _b64(data), "assets": [_blob_arg(a) for a in assets]},
        )
        return _data_field(result, "updateModuleAssetDependencies")

    def create_application_and_asset_bundle(
        self,
        app: NamedBlob | tuple[str, bytes],
        assets: Sequence[NamedBlob | tuple[str, bytes]],
    ) -> bytes:
        """The zip ``createApplicationAndAssetBundle`` builds (timestamps vary per call)."""
        result = self.call(
            "createApplicationAndAssetBundle",
            {"app": _blob_arg(app), "assets": [_blob_arg(a) for a in assets]},
        )
        return _data_field(result, "createApplicationAndAssetBundle")

    def unpack_application_and_asset_bundle(self, data: bytes) -> Bundle:
        result = self.call("unpackApplicationAndAssetBundle", {"data": _b64(data)})
        if not isinstance(result, dict) or not isinstance(result.get("assets"), list):
            raise BvrSetupError(f"malformed reply to unpackApplicationAndAssetBundle: {result!r}")
        app = result.get("application")
        variables = result.get("vars")
        return Bundle(
            application=None if app is None else _blob_result(app, "application"),
            assets=[_blob_result(a, f"assets[{i}]") for i, a in enumerate(result["assets"])],
            vars=variables if isinstance(variables, dict) else None,
        )
