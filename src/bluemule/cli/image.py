"""``bluemule image …``: inspect and build Particle modules, asset modules and bundles."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bluemule import image as img
from bluemule.cli.common import ExitCode, emit_json, fail, write_atomically

_PATH = click.Path(path_type=Path)
_IN = click.Path(path_type=Path, exists=False)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Report any image error as ``PATH: message`` with exit status 2."""
    try:
        yield
    except img.ImageError as exc:
        fail(f"{path}: {exc}")


def _load(path: Path) -> bytes:
    with _reading(path):
        return img.read_file(path)


def _module(path: Path) -> img.Module:
    data = _load(path)
    with _reading(path):
        return img.parse_module(data)


def _written(path: Path, data: bytes, as_json: bool, **extra: Any) -> None:
    write_atomically(path, data)
    info = {
        "output": str(path),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        **extra,
    }
    if as_json:
        emit_json(info)
    else:
        click.echo(f"wrote {path} ({len(data)} bytes, sha256 {info['sha256'][:16]}…)")


@click.group()
def image() -> None:
    """Inspect and build Particle firmware modules, asset modules and bundles."""


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@image.command()
@click.argument("file", type=_IN)
@_json_option
def inspect(file: Path, as_json: bool) -> None:
    """Show what FILE is: a module, a combined module or a bundle, and whether it is valid.

    Exit status 0 valid, 1 parsed but a check failed, 2 not readable or not a Particle
    module or bundle. The --json schema is in docs/image-json.md.
    """
    data = _load(file)
    with _reading(file):
        result = img.inspect_image(data)
    if as_json:
        emit_json(result.report)
    else:
        _print_report(result.report)
    if not result.ok:
        raise SystemExit(ExitCode.CHECK_FAILED)


def _yes(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[red]MISMATCH[/red]"


def _module_table(r: dict[str, Any], title: str) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    plat = r["platform"] or "?"
    t.add_row("function", f"{r['function']} (index {r['index']})")
    t.add_row("platform", f"{plat} ({r['platform_id']})")
    t.add_row("module version", str(r["module_version"]))
    t.add_row("addresses", f"{r['start_address']:#010x} – {r['end_address']:#010x}")
    t.add_row("size", f"{r['size']} bytes")
    t.add_row("flags", ", ".join(r["flags"]) or "—")
    deps = ", ".join(f"{d['function']} {d['index']} ≥ {d['version']}" for d in r["dependencies"])
    t.add_row("depends on", deps or "—")
    product = "—" if r["product_id"] is None else f"{r['product_id']} v{r['product_version']}"
    t.add_row("product", product)
    t.add_row("sha256", f"{r['sha256']} {_yes(r['sha256_ok'])}")
    t.add_row("crc32", f"{r['crc32']} {_yes(r['crc_ok'])}")
    if r["compressed"]:
        t.add_row("compressed", f"original size {r['compressed']['original_size']} bytes")
    if r["asset"]:
        t.add_row("asset", f"{r['asset']['name']} sha256 {r['asset']['sha256']}")
    for dep in r["asset_dependencies"]:
        t.add_row("needs asset", f"{dep['name']} sha256 {dep['sha256']}")
    if r.get("protected"):
        t.add_row("security", "PROTECTED (Device Protection)")
    return t


def _print_report(r: dict[str, Any]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    if r["kind"] == "bundle":
        console.print(_module_table(r["app"], f"bundle application {r['app_name']}"))
        assets = Table(title="assets", title_justify="left")
        for col in ("name", "size", "sha256"):
            assets.add_column(col, overflow="fold")
        for a in r["assets"]:
            assets.add_row(a["name"], str(a["size"]), a["sha256"])
        console.print(assets)
    elif r["modules"]:
        for i, part in enumerate(r["modules"], 1):
            console.print(_module_table(part, f"combined module, part {i} of {len(r['modules'])}"))
    else:
        console.print(_module_table(r, "module"))
    for problem in r["problems"]:
        console.print(f"[red]problem:[/red] {problem}")
    console.print("[green]valid[/green]" if r["ok"] else "[red]INVALID[/red]")


@image.command("asset-module")
@click.argument("name")
@click.argument("file", type=_IN)
@click.option("-o", "--output", type=_PATH, required=True, help="Where to write the module.")
@click.option("--no-compress", is_flag=True, help="Leave the asset module uncompressed.")
@_json_option
def asset_module(name: str, file: Path, output: Path, no_compress: bool, as_json: bool) -> None:
    """Wrap the raw FILE as an asset module called NAME (compressed unless --no-compress)."""
    data = _load(file)
    with _reading(file):
        module = img.create_asset_module(data, name, compress=not no_compress)
    _written(output, module, as_json, name=name, asset_sha256=hashlib.sha256(data).hexdigest())


def _asset_files(paths: tuple[Path, ...]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(
                sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            )
        else:
            files.append(p)
    return files


@image.command("bundle")
@click.argument("app", type=_IN)
@click.argument("assets", nargs=-1, type=_IN)
@click.option("-o", "--output", type=_PATH, required=True, help="The bundle .zip to write.")
@_json_option
def bundle(app: Path, assets: tuple[Path, ...], output: Path, as_json: bool) -> None:
    """Bundle APP.bin with ASSET files (or folders of them), as `particle compile` does.

    The application's asset dependencies are set to exactly these assets.
    """
    files = _asset_files(assets)
    pairs = [(f.name, _load(f)) for f in files]
    app_data = _load(app)
    with _reading(app):
        zipped = img.write_bundle(app.name, app_data, pairs)
        check = img.check_bundle(img.read_bundle(zipped))
    if not check.ok:
        fail(f"{output}: " + "; ".join(check.problems), ExitCode.CHECK_FAILED)
    _written(output, zipped, as_json, assets=[n for n, _ in pairs])


@image.command("compress")
@click.argument("source", type=_IN)
@click.option("-o", "--output", type=_PATH, required=True)
@_json_option
def compress(source: Path, output: Path, as_json: bool) -> None:
    """Compress a user part, system part or asset module (the bootloader inflates it)."""
    module = _module(source)
    with _reading(source):
        out = img.compress_module(module)
    _written(output, out, as_json, original_size=len(module.data))


@image.command("decompress")
@click.argument("source", type=_IN)
@click.option("-o", "--output", type=_PATH, required=True)
@_json_option
def decompress(source: Path, output: Path, as_json: bool) -> None:
    """Decompress a compressed module back to the original."""
    module = _module(source)
    with _reading(source):
        out = img.decompress_module(module)
    _written(output, out, as_json, compressed_size=len(module.data))


@image.command("combine")
@click.argument("first", type=_IN)
@click.argument("second", type=_IN)
@click.option("-o", "--output", type=_PATH, required=True)
@_json_option
def combine(first: Path, second: Path, output: Path, as_json: bool) -> None:
    """Combine two modules into one OTA file (Device OS installs at most two)."""
    parts = [_load(first), _load(second)]
    with _reading(first):
        out = img.combine_modules(parts)
    _written(output, out, as_json, parts=[str(first), str(second)])


@image.command("split")
@click.argument("source", type=_IN)
@click.option(
    "-o", "--output", "directory", type=_PATH, required=True, help="Folder for the parts."
)
@_json_option
def split(source: Path, directory: Path, as_json: bool) -> None:
    """Split a combined module into its parts, written as DIR/NN-<function>.bin."""
    data = _load(source)
    with _reading(source):
        parts = img.split_combined(data)
        modules = [img.parse_module(p) for p in parts]
    written = []
    for i, (part, module) in enumerate(zip(parts, modules, strict=True), 1):
        name = f"{i:02d}-{img.ModuleFunction(module.function).label}.bin"
        write_atomically(directory / name, part)
        written.append(
            {
                "output": str(directory / name),
                "size": len(part),
                "sha256": hashlib.sha256(part).hexdigest(),
            }
        )
    if as_json:
        emit_json({"parts": written})
    else:
        for w in written:
            click.echo(f"wrote {w['output']} ({w['size']} bytes)")
