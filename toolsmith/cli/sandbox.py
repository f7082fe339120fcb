"""`toolsmith sandbox`: build the image, show its status, run the confinement self-test."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from toolsmith.cli._common import JsonOpt, console, emit, err_console, escape
from toolsmith.cli._image import ImageBuildDisplay
from toolsmith.errors import ConfinementError, SandboxError

app = typer.Typer(help="Build, inspect and self-test the Docker sandbox.", no_args_is_help=True)

BaseOpt = Annotated[
    str | None,
    typer.Option(
        "--base",
        help="Local image to build FROM; it needs python3 with libseccomp's binding "
        "(default: a Debian root filesystem built offline with mmdebstrap).",
        show_default=False,
    ),
]


@app.command("build")
def build(base: BaseOpt = None, as_json: JsonOpt = False) -> None:
    """Build the sandbox image offline; a no-op when its inputs are unchanged."""
    from toolsmith.sandbox import ensure_image  # the Docker SDK loads only for sandbox commands

    display = ImageBuildDisplay(err_console)
    info = ensure_image(base=base, progress=display.step)
    if info.built:
        display.done(info.tag)
    emit(
        info,
        as_json,
        lambda: console.print(
            f"{'built' if info.built else 'up to date'} [bold]{info.tag}[/bold] "
            f"{info.image_id[:19]} (base {info.base})",
            highlight=False,
        ),
    )


@app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """Is the engine reachable, is the image built, which runtime runs jobs, and what the warm
    pools of processes on this host are doing (sizes, counts, start times). ``--json``:
    ``{engine, image, runtime, error, pools: [PoolStatus]}``."""
    from toolsmith.sandbox import connect, find_image, pool_statuses

    data: dict[str, Any] = {"engine": False, "image": None, "runtime": None, "error": None}
    data["pools"] = [p.model_dump(mode="json") for p in pool_statuses()]
    try:
        engine = connect()
        data.update(engine=True, server_version=engine.server_version, runtime=engine.runtime)
        found = find_image(engine)
        data["image"] = found.model_dump() if found else None
    except SandboxError as e:
        data["error"] = str(e)

    def render() -> None:
        if not data["engine"]:
            console.print(
                f"[red]engine unreachable[/red]: {escape(data['error'])}", highlight=False
            )
            return
        console.print(f"engine   Docker {data['server_version']}, runtime {data['runtime']}")
        image = data["image"]
        if image:
            console.print(f"image    {image['tag']} {image['image_id'][:19]}", highlight=False)
        else:
            console.print("image    [yellow]not built[/yellow] (run `toolsmith sandbox build`)")
        if not data["pools"]:
            console.print("pools    none running on this host")
            return
        for p in data["pools"]:
            console.print(
                f"pool     {p['id']} of {p['owner']}: ready {p['ready']}, starting "
                f"{p['starting']}, in use {p['in_use']}, target {p['target']} (size "
                f"{p['size']}..{p['max_size']}); jobs {p['jobs']} ({p['cold_jobs']} found it "
                f"empty); start {_secs(p['start_s_p50'])} s, cold start "
                f"{_secs(p['cold_start_s_p50'])} s (medians); idle {p['idle_s']:.0f} s",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )

    emit(data, as_json, render)
    if not data["engine"] or data["image"] is None:
        raise typer.Exit(1)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@app.command("check")
def check(as_json: JsonOpt = False) -> None:
    """Run confinement probes inside the sandbox, the run-time barriers' in both Docker paths;
    exit non-zero if any property is missing. ``--json``: ``{probes, barriers}``."""
    from toolsmith.sandbox import BARRIERS, check_confinement

    probes = check_confinement()

    def render() -> None:
        table = Table("probe", "property", "result")
        for p in probes:
            result = "[green]ok[/green]" if p.ok else f"[red]MISSING[/red] {escape(p.detail)}"
            table.add_row(p.name, p.description, result)
        console.print(table)
        barriers = Table("barrier", "lifted by declaring", "denies", "by")
        for b in BARRIERS:
            barriers.add_row(b.name, b.capability or "(nothing)", b.denies, b.mechanism)
        console.print(barriers)

    emit({"probes": probes, "barriers": list(BARRIERS)}, as_json, render)
    missing = [p.name for p in probes if not p.ok]
    if missing:
        raise ConfinementError(
            f"isolation properties missing: {', '.join(missing)}",
            hint="do not run untrusted code here; check the engine's runtime and security options",
        )


@app.command("prune")
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be removed.")
    ] = False,
    base: BaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove sandbox images older builds left behind, and containers of dead processes."""
    from toolsmith.sandbox import prune_images

    report = prune_images(base=base, dry_run=dry_run)

    def render() -> None:
        verb = "would remove" if dry_run else "removed"
        for tag in report.removed:
            console.print(f"{verb} {tag}", highlight=False)
        for tag in report.in_use:
            console.print(f"kept {tag}: a container still uses it", highlight=False)
        console.print(
            f"current image: {report.current or 'not built'}; {len(report.removed)} image(s) "
            f"{verb}"
            + (
                f"; {report.stale_containers} stale container(s) removed"
                if report.stale_containers
                else ""
            ),
            highlight=False,
        )

    emit(report, as_json, render)
