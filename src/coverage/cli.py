"""Command line ``covplan`` (built on Typer; help texts in Chinese and English).

Every command prints where it wrote its files, shows progress on long steps, and on bad input exits
non-zero with a one-line bilingual reason and no partial output directory.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from coverage import __version__
from coverage.errors import InputError

app = typer.Typer(
    help=(
        "covplan — 公共服务设施15分钟服务圈覆盖评估、缺口清单与选址。\n\n"
        "Public-service coverage planning: 15-minute service circles, gaps and siting "
        "for Chinese counties."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
console = Console(stderr=True)


def _fail(err: Exception) -> None:
    console.print(f"[bold red]错误 / error:[/] {err}", highlight=False)
    raise typer.Exit(code=1)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"covplan {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="版本号 / show the version"
    ),
) -> None:
    """covplan: 公共服务覆盖评估 / public-service coverage planning."""


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="输出目录 / output directory"),
) -> None:
    """在内置合成示例县上运行完整评估 / run the main job on the embedded synthetic demo county."""
    from coverage import pipeline

    try:
        result = pipeline.run_demo(out, console=console)
    except InputError as err:
        _fail(err)
    _print_result(result)


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="情景文件 / scenario YAML"),
    out: Path = typer.Option(None, "--out", help="输出目录 / output directory (default out/<scenario>)"),
) -> None:
    """评估一个情景 / evaluate one scenario and write map, gap list and report."""
    from coverage import pipeline

    out = out or Path("out") / scenario.stem
    try:
        result = pipeline.run_scenario(scenario, out, console=console)
    except InputError as err:
        _fail(err)
    _print_result(result)


@app.command()
def validate(
    scenario: Path = typer.Argument(..., help="情景文件 / scenario YAML"),
) -> None:
    """检查输入并列出全部问题 / check the inputs, print every problem, exit 1 if any."""
    from coverage import scenario as scn

    problems = scn.validate(scenario)
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        typer.echo(str(p))
    if errors:
        typer.echo(f"共 {len(errors)} 个错误 / {len(errors)} error(s) in {scenario}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"通过 / OK: {scenario} ({len(problems)} warning(s))")


def _print_result(result) -> None:  # noqa: ANN001 - pipeline.RunResult
    typer.echo(result.describe())
    typer.echo(f"输出目录 / written to: {result.out_dir.resolve()}")
    for name in sorted(result.files):
        typer.echo(f"  {name}")


if __name__ == "__main__":  # pragma: no cover
    app()
