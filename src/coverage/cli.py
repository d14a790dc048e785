"""Command line ``covplan`` (built on Typer; help texts in Chinese and English).

Every command prints where it wrote its files, shows progress on long steps, and on bad input exits
non-zero with a one-line bilingual reason and no partial output directory. ``--out`` never deletes
or changes a file covplan did not write (rules in :mod:`coverage._atomic`; ``--overwrite`` lets it
write into a folder that holds other files), and is checked before any input is read.
"""

from __future__ import annotations

import gc
from pathlib import Path

import typer
from rich.console import Console

from coverage import __version__
from coverage._atomic import output_policy
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
    console.print(f"[bold red]错误 / error:[/] {err}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


OVERWRITE_HELP = (
    "目录里已有其他文件时仍写入：只替换 covplan 自己的输出文件，其他文件保留 / write into a folder "
    "that holds other files: replace only covplan's own output files, keep every other file"
)


TILES_HELP = (
    "底图 / basemap: none（无底图，完全离线）| osm | amap（高德，叠加层转为 GCJ-02）| tianditu（天地图，需 --tianditu-key）"
)

TOP_HELP = "项目库最多项目数（默认50，其余列入储备项目）/ most rows in 项目库 (default 50; the rest go to 储备项目)"
BUDGET_HELP = "项目库总投资上限（万元）/ total investment cap of 项目库, 万元"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"covplan {__version__}")
        raise typer.Exit()


def _tolerant_streams() -> None:
    """Let a non-UTF-8 terminal print every message: characters it lacks become ``?``.

    On Chinese Windows, output redirected to a file or a pipe is encoded in the ANSI code page
    (GBK), which has no ``²`` (km²) or ``✓``: without this, a warning holding one stops the command
    with ``UnicodeEncodeError``. ``PYTHONUTF8=1`` (docs/安装.md) avoids the loss altogether.
    """
    import sys

    for stream in (sys.stdout, sys.stderr):
        enc = str(getattr(stream, "encoding", "") or "").lower().replace("-", "").replace("_", "")
        if enc and not enc.startswith("utf") and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


def _malloc_settings() -> None:
    """Set the malloc arenas and thresholds of glibc (:data:`coverage.settings.MALLOC_ARENAS` and the two after it; elsewhere: nothing)."""
    import ctypes
    import sys

    from coverage import settings

    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc (musl has none)
    except (OSError, AttributeError):
        return
    for option, value in ((-8, settings.MALLOC_ARENAS), (-3, settings.MALLOC_MMAP_THRESHOLD),  # M_ARENA_MAX,
                          (-1, settings.MALLOC_TRIM_THRESHOLD)):  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
        if value:
            mallopt(option, int(value))


#: Python's collector thresholds before :func:`_gc_thresholds` (the meeting mode serves with them).
_GC_DEFAULT = gc.get_threshold()


def _gc_thresholds() -> None:
    """Let Python's cyclic garbage collector run rarely (:data:`coverage.settings.GC_THRESHOLDS`)."""
    from coverage import settings

    if settings.GC_THRESHOLDS:
        gc.set_threshold(*settings.GC_THRESHOLDS)


def _serving_gc() -> None:
    """Python's collector as by default again, once the meeting mode's model is built, which it then leaves alone.

    The model lives as long as the server and is not changed: ``gc.freeze`` moves its objects (the
    cells' points among them) out of the collector's passes; Python's default thresholds then let
    the garbage of a long meeting go as soon as usual.
    """
    gc.freeze()
    gc.set_threshold(*_GC_DEFAULT)


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="版本号 / show the version"
    ),
) -> None:
    """covplan: 公共服务覆盖评估 / public-service coverage planning."""
    _tolerant_streams()
    _malloc_settings()
    _gc_thresholds()


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="输出目录 / output directory"),
    tiles: str = typer.Option("none", "--tiles", help=TILES_HELP),
    tianditu_key: str = typer.Option(None, "--tianditu-key", help="天地图密钥 / Tianditu key"),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """在内置合成示例县上运行完整评估 / run the main job on the embedded synthetic demo county."""
    from coverage import pipeline

    try:
        with output_policy(out, overwrite=overwrite, protect=[pipeline.demo_scenario_path()]):
            result = pipeline.run_demo(out, console=console, tiles=tiles, tianditu_key=tianditu_key)
    except InputError as err:
        _fail(err)
    _print_result(result)


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="情景文件 / scenario YAML"),
    out: Path = typer.Option(None, "--out", help="输出目录 / output directory (default out/<scenario>)"),
    tiles: str = typer.Option("none", "--tiles", help=TILES_HELP),
    tianditu_key: str = typer.Option(None, "--tianditu-key", help="天地图密钥 / Tianditu key"),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    top: int = typer.Option(None, "--top", min=0, help=TOP_HELP),
    budget: float = typer.Option(None, "--budget", min=0, help=BUDGET_HELP),
) -> None:
    """评估一个情景 / evaluate one scenario and write map, gap list and report."""
    out = out or Path("out") / scenario.stem
    try:
        with output_policy(out, overwrite=overwrite, protect=[scenario]):
            from coverage import pipeline  # after the checks: a refusal takes no time

            with pipeline.bank_limits(top, budget):
                result = pipeline.run_scenario(scenario, out, console=console, tiles=tiles,
                                               tianditu_key=tianditu_key)
    except InputError as err:
        _fail(err)
    _print_result(result)


@app.command()
def validate(
    scenario: Path = typer.Argument(..., help="情景文件 / scenario YAML"),
) -> None:
    """检查输入并列出全部问题 / check the inputs, print every problem, exit 1 if any.

    The same reading and checks as run, site and compare (which stop on the same errors).
    """
    from coverage import pipeline

    with pipeline.progress(console) as step:
        step("检查输入 / checking inputs")
        from coverage.batch import validate_file  # a region file (counties:) or a scenario

        problems = validate_file(scenario)
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        typer.echo(str(p))
    if errors:
        typer.echo(f"共 {len(errors)} 个错误 / {len(errors)} error(s) in {scenario}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"通过 / OK: {scenario} ({len(problems)} warning(s))")


@app.command()
def site(
    scenario: Path = typer.Argument(..., help="情景文件 / scenario YAML"),
    category: str = typer.Option(..., "--category", help="服务类别或设施类型 / service (school|clinic|elderly|fitness) or facility type (e.g. kindergarten)"),
    add: int = typer.Option(None, "--add", help="新增点位数（最大覆盖）/ number of new sites (maximal covering)"),
    target_share: float = typer.Option(
        None, "--target-share", help="目标覆盖率，如 0.95（最少点位）/ share to cover, fewest sites"
    ),
    generate: int = typer.Option(
        0, "--generate", help="另按未覆盖人口生成候选点数 / extra candidates from unserved people"
    ),
    time_limit: float = typer.Option(60.0, "--time-limit", help="求解时限（秒）/ solver time limit, s"),
    exclude: Path = typer.Option(
        None, "--exclude", help="禁建区面图层（水域、保护区）/ polygons where no generated site may go"
    ),
    out: Path = typer.Option(None, "--out", help="输出目录 / output directory"),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    top: int = typer.Option(None, "--top", min=0, help=TOP_HELP),
    budget: float = typer.Option(None, "--budget", min=0, help=BUDGET_HELP),
) -> None:
    """选址：为一类服务挑选新点位并评估方案 / choose new sites for one service and write the plan."""
    out = out or Path("out") / f"{scenario.stem}-site-{category}"
    try:
        _check_site_args(add, target_share, generate, time_limit)
        with output_policy(out, overwrite=overwrite, protect=[scenario]):
            from coverage import pipeline, plans  # after the checks: a refusal takes no time

            with pipeline.bank_limits(top, budget):
                run = plans.site_scenario(scenario, out, category, add=add, target_share=target_share,
                                          generate=generate, time_limit=time_limit, exclude=exclude,
                                          console=console)
    except InputError as err:
        _fail(err)
    s = run.plan.summary["siting"]
    typer.echo(
        f"选址 / siting ({s['model']}, {s['method']}): {len(s['selected'])} 个点位 / sites, "
        f"新增覆盖 {s['new_covered']:,.0f} 人 / newly covered; "
        f"最优性差距 / optimality gap {s['gap']:.2%}; "
        f"求解 / solved in {run.solution.timings.get('total', float('nan')):.1f} s"
    )
    if add is not None and len(s["selected"]) < add:
        typer.echo(
            f"  注意：只有 {len(s['selected'])} 个候选点位能增加覆盖，其余点位不再新增覆盖人口。/ "
            f"only {len(s['selected'])} candidates add coverage; more sites would cover nobody new."
        )
    for r in run.proposed.itertuples():
        typer.echo(f"  {r.rank}. {r.unit_name} {r.name}: +{r.new_covered:,.0f}")
    _print_result(run.plan)


@app.command()
def compare(
    base: Path = typer.Argument(..., help="现状情景 / baseline scenario YAML"),
    plan: Path = typer.Argument(..., help="规划情景 / plan scenario YAML"),
    out: Path = typer.Option(None, "--out", help="输出目录 / output directory"),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """方案比较：按服务和乡镇列出新增/失去覆盖人口 / compare a plan with the baseline."""
    out = out or Path("out") / f"compare-{base.stem}-{plan.stem}"
    if _same_file(base, plan):
        console.print(
            f"警告 / warning: 现状和规划是同一个文件 {base}，各项变化都将为 0。/ the baseline and the plan are "
            "the same file; every change will be 0.", highlight=False, soft_wrap=True,
        )
    try:
        with output_policy(out, overwrite=overwrite, protect=[base, plan]):
            from coverage import plans  # after the checks: a refusal takes no time

            result, diff = plans.compare_scenarios(base, plan, out, console=console)
    except InputError as err:
        _fail(err)
    county = diff[diff["unit_code"] == ""]
    for r in county.itertuples():
        typer.echo(
            f"  {r.service}: +{r.gained:,.0f} 新增覆盖 / gained, -{r.lost:,.0f} 失去覆盖 / lost, "
            f"{r.share_base:.1%} → {r.share_plan:.1%}"
        )
    _print_result(result)


@app.command()
def prepare(
    out_dir: Path = typer.Argument(..., help="输出的情景目录 / scenario folder to create"),
    area: str = typer.Option(
        None, "--area", help="县名、6 位代码或边界文件 / county name, 6-digit adcode or polygon file (崆峒区|620802|area.gpkg)"
    ),
    admin: Path = typer.Option(
        None, "--admin", help="行政区划文件（按县名/代码查找时必需）/ admin-boundary file, needed for a name or code"
    ),
    units: str = typer.Option(None, "--units", help="乡镇/街道面图层 PATH[:crs] / township polygons"),
    seats: str = typer.Option(
        None, "--seats", help="乡镇驻地 CSV/点图层（无乡镇边界时近似）/ township seats, for approximate units"
    ),
    roads: str = typer.Option(
        None, "--roads", help="路网：OSM PBF、线图层或 osmnx（在线）/ roads: OSM PBF, line layer, or osmnx (online)"
    ),
    pois: list[str] = typer.Option(
        None, "--pois", help="OSM POI：PBF 或 Geofabrik POI shp，可多次 / OSM POIs (PBF or Geofabrik shp), repeatable"
    ),
    facilities: list[str] = typer.Option(
        None, "--facilities",
        help="设施表 PATH[:crs[:ftype]]（高德 :gcj02，百度 :bd09；无类型列的单类图层加 ftype，如 学校.shp::primary），可多次 / facility files PATH[:crs[:ftype]], repeatable",
    ),
    population: Path = typer.Option(
        None, "--population", help="人口栅格（WorldPop 人数或密度）/ population raster (WorldPop counts or density)"
    ),
    population_kind: str = typer.Option(
        "auto", "--population-kind", help="栅格含义 auto|count|density / raster values"
    ),
    census: Path = typer.Option(
        None, "--census", help="2020 普查县级表目录（年龄结构、人口核对）/ 2020 county census folder"
    ),
    adcode: str = typer.Option(None, "--adcode", help="县级代码（范围为文件时）/ county adcode when the area is a file"),
    buffer_m: float = typer.Option(3000.0, "--buffer", help="道路和 POI 外扩缓冲（米）/ buffer for roads and POIs, m"),
    name: str = typer.Option(None, "--name", help="情景名称 / scenario name"),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """由原始数据生成情景目录并报告数据质量 / build a scenario folder from raw data, with a data-quality report."""
    import json

    from coverage import prepare as prep

    try:
        with output_policy(out_dir, overwrite=overwrite):
            yml = prep.prepare(
                out_dir, area=area, admin_path=admin, units=units, seats=seats, roads=roads, pois=pois or None,
                facilities=facilities or None, population=population, population_kind=population_kind,
                census_dir=census, adcode=adcode, buffer_m=buffer_m, name=name,
            )
    except InputError as err:
        _fail(err)
    q = json.loads((yml.parent / "quality.json").read_text(encoding="utf-8"))
    typer.echo(prep.quality_summary(q))
    typer.echo(f"数据质量报告 / data-quality report: {(yml.parent / 'quality.md').resolve()}")
    typer.echo(f"情景文件 / scenario: {yml.resolve()}")


@app.command()
def standards(
    name: str = typer.Argument(None, help="预设名称或文件 / preset name or YAML file (omit to list them)"),
) -> None:
    """列出标准预设或显示其规则与出处 / list the standards presets, or show one with its sources."""
    from coverage import standards as std
    from coverage.standards import describe

    if name is None:
        for key in std.list_presets():
            typer.echo(describe.preset_line(std.load_preset(key)))
        return
    try:
        p = std.load_preset(name)
    except InputError as err:
        _fail(err)
    typer.echo(describe.preset_text(p))


def _check_site_args(add: int | None, target_share: float | None, generate: int, time_limit: float) -> None:
    """Refuse out-of-range ``covplan site`` numbers before anything is read or computed.

    Raises
    ------
    InputError
        ``--add`` < 1, ``--target-share`` outside (0, 1], ``--generate`` < 0 or ``--time-limit`` ≤ 0.
        (That exactly one of ``--add`` and ``--target-share`` is given is checked by
        :func:`coverage.plans.site_scenario`.)
    """
    if add is not None and add < 1:
        raise InputError(f"--add 是新增点位数，须为 ≥ 1 的整数，现为 {add}。",
                         f"--add is the number of new sites and must be ≥ 1; got {add}.", field="--add")
    if target_share is not None and not 0 < target_share <= 1:
        raise InputError(
            f"--target-share 是目标覆盖率，须在 (0, 1] 之间（如 0.95 = 95%），现为 {target_share:g}。",
            f"--target-share is the share of people to cover and must lie in (0, 1] (e.g. 0.95 = 95 %); "
            f"got {target_share:g}.", field="--target-share",
        )
    if generate < 0:
        raise InputError(f"--generate 是另生成的候选点数，须 ≥ 0，现为 {generate}。",
                         f"--generate is a number of extra candidates and must be ≥ 0; got {generate}.",
                         field="--generate")
    if not time_limit > 0:
        raise InputError(f"--time-limit 是求解时限（秒），须 > 0，现为 {time_limit:g}。",
                         f"--time-limit is the solver's time limit in seconds and must be > 0; got {time_limit:g}.",
                         field="--time-limit")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return a.resolve() == b.resolve()


#: Set once a command has written all its outputs (:func:`_print_result`): :func:`entry` then ends
#: the process without freeing the model object by object.
_DONE = {"written": False}


def entry() -> None:
    """The ``covplan`` command: :data:`app`, then a quick exit once a run's outputs are written.

    After ``run``, ``demo``, ``site`` or ``compare`` has written its folder and printed its summary,
    the process ends with ``os._exit`` once the log handlers and streams are flushed: Python would
    otherwise free the model's cells one object at a time (0.5 s for a county of a million 100 m
    cells) before the planner gets the prompt back. Every other command, and any error, exits the
    usual way.
    """
    import logging
    import os
    import sys

    try:
        app()
    except SystemExit as exc:
        if not _DONE["written"]:
            raise
        code = exc.code
        if code is not None and not isinstance(code, int):  # sys.exit("text"): printed, status 1
            print(code, file=sys.stderr)
            code = 1
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more to say
                pass
        os._exit(code or 0)


def _print_result(result) -> None:  # noqa: ANN001 - pipeline.RunResult
    warnings = result.summary.get("warnings") or []
    if warnings:
        typer.echo(f"注意 / warnings ({len(warnings)}) — 可能影响下列数字 / these may affect the figures below:")
        for w in warnings:
            where = ", ".join(str(x) for x in (Path(str(w["file"])).name if w.get("file") else None, w.get("field")) if x)
            typer.echo(f"  ! {w['zh']} / {w['en']}" + (f" [{where}]" if where else ""))
    typer.echo(result.describe())
    typer.echo(f"输出目录 / written to: {result.out_dir.resolve()}")
    for name in sorted(result.files):
        typer.echo(f"  {name}")
    _DONE["written"] = True


@app.command()
def batch(
    region: Path = typer.Argument(..., help="区域文件（含 counties:）/ region YAML (with counties:)"),
    out: Path = typer.Option(..., "--out", help="输出目录 / output directory"),
    workers: int = typer.Option(
        None, "--workers", help="本机计算进程数（默认=核数；0=不用 Dask，本进程逐县计算）/ local worker processes (default: cores; 0: no Dask)"
    ),
    scheduler: str = typer.Option(
        None, "--scheduler", help="已有 Dask 调度器地址，如 tcp://10.0.0.5:8786 / address of a running dask.distributed scheduler"
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """全市/全省批量：逐县准备数据并评估（Dask 并行）/ every county of a prefecture or province, on Dask.

    Exit code 0: every county done; 2: some counties failed (the region files cover the others);
    1: bad region file or output folder, or every county failed.
    """
    from coverage import batch as batch_mod

    try:
        res = batch_mod.run_batch(region, out, workers=workers, scheduler=scheduler, overwrite=overwrite, console=console)
    except InputError as err:
        _fail(err)
    typer.echo(res.describe())
    typer.echo(f"输出目录 / written to: {res.out_dir.resolve()}")
    for name in res.files:
        typer.echo(f"  {name}")
    if res.exit_code:
        raise typer.Exit(code=res.exit_code)


@app.command()
def serve(
    scenario: Path = typer.Argument(..., help="现状情景文件 / baseline scenario YAML"),
    port: int = typer.Option(8765, "--port", help="端口 / port"),
    host: str = typer.Option("127.0.0.1", "--host", help="监听地址（非本机地址须令牌）/ address to listen on (other than 127.0.0.1 needs a token)"),
    no_browser: bool = typer.Option(False, "--no-browser", help="不自动打开浏览器 / do not open a browser"),
    tiles: str = typer.Option("none", "--tiles", help="底图 / basemap: none（离线）| osm | amap | tianditu（导出的 map.html 用）"),
    token: str = typer.Option(None, "--token", help="访问令牌（--host 非本机时未给出则自动生成）/ access token"),
    out: Path = typer.Option(None, "--out", help="导出目录（每个方案一个子目录）/ export folder (one sub-folder per variant)"),
    lang: str = typer.Option("zh", "--lang", help="界面语言 zh|en / page language"),
) -> None:
    """会议模式：在地图上即时回答“在这里建会怎样” / meeting mode: a local web app that answers "what if we build it here?" live."""
    import secrets
    import webbrowser

    from coverage.report.map import check_tiles

    out = out or Path("out") / f"{scenario.stem}-meeting"
    try:
        check_tiles(tiles)
        if host not in ("127.0.0.1", "localhost", "::1") and not token:
            token = secrets.token_urlsafe(16)
        from coverage.serve.app import create_app, start_server
        from coverage.serve.state import Session

        from coverage import pipeline

        with pipeline.progress(console) as step:
            session = Session(scenario, out, progress=step)
    except InputError as err:
        _fail(err)
    _serving_gc()
    app_ = create_app(session, token=token, lang=lang, tiles=tiles)
    try:
        server, thread, port = start_server(app_, host, port)
    except OSError as err:
        _fail(InputError(f"无法在 {host}:{port} 监听：{err}。请换一个端口（--port）。",
                         f"cannot listen on {host}:{port}: {err}. Use another --port.", field="--port"))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    typer.echo(f"会议模式已就绪 / meeting mode ready: {url}")
    typer.echo("  点击地图新增设施，点击候选点位建设，拖动设施移动，点击设施删除或修改；撤销/重做/重置在右侧面板。")
    typer.echo("  Click the map to add a facility, a candidate to build it, drag to move, click one to remove or change it.")
    typer.echo(f"  保存的方案 / saved plans: {session.path.parent}; 导出 / exports: {out.resolve()}")
    typer.echo("  按 Ctrl+C 结束 / press Ctrl+C to stop.")
    if not no_browser:
        webbrowser.open(url)
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(5)


if __name__ == "__main__":  # pragma: no cover
    entry()
