"""Download public data sets into a local cache: resumable, cached, checksummed, or fully offline.

:func:`fetch` is the one way ``covplan prepare`` gets files from the internet (WorldPop rasters,
Geofabrik OpenStreetMap extracts). It uses only the standard library (:mod:`urllib.request`) and
shows a :mod:`rich` progress bar.

* **Cached**: a complete file already in ``dest_dir`` is reused without any request (when a
  ``sha256`` is given it must match; a cached file that does not match is downloaded again).
* **Resumable**: bytes arrive in ``<name>.part``; an interrupted download continues with an HTTP
  ``Range: bytes=N-`` request, in the same call (up to ``retries`` times) or in a later one. A server
  that ignores ``Range`` (answers ``200`` with the whole file) is handled by starting again.
* **Checksummed**: with ``sha256`` the finished file is verified; on a mismatch it is deleted and a
  bilingual :class:`~coverage.errors.InputError` says what to do.
* **Atomic**: the final file appears (by :func:`os.replace`) only when it is complete and verified.
* **Offline**: with ``offline_dir`` (or the environment variable ``COVPLAN_OFFLINE_DIR``) the file of
  the same name is taken from that folder and the network is never touched. This is how a planning
  office without internet (or a test) supplies files fetched elsewhere.

The URL helpers build addresses for WorldPop and Geofabrik. **The WorldPop patterns are copied from
the paths on WorldPop's public data portal (data.worldpop.org) as used in published scripts; they
are unverified here (this machine has no internet) and WorldPop has reorganised its folders
before. If a URL answers 404, look the file up on https://hub.worldpop.org and pass the URL
yourself.** The Geofabrik province names follow its ``asia/china`` folder.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from coverage.errors import InputError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

#: Environment variable naming a folder of pre-downloaded files (offline mode).
OFFLINE_ENV = "COVPLAN_OFFLINE_DIR"
#: Suffix of partly downloaded files.
PART_SUFFIX = ".part"
#: User-Agent sent with every request (some servers reject Python's default one).
USER_AGENT = "covplan/0.1 (+https://pypi.org/project/covplan/; urllib)"

WORLDPOP_BASE = "https://data.worldpop.org/GIS"
#: Lower age bounds of WorldPop's age/sex rasters (0, 1–4, 5–9, …, 80+).
WORLDPOP_AGES: tuple[int, ...] = (0, 1) + tuple(range(5, 85, 5))
GEOFABRIK_BASE = "https://download.geofabrik.de"

#: Geofabrik extract paths for Chinese provinces, keyed by the first two digits of the adcode.
GEOFABRIK_CHINA: dict[str, str] = {
    "11": "asia/china/beijing", "12": "asia/china/tianjin", "13": "asia/china/hebei",
    "14": "asia/china/shanxi", "15": "asia/china/inner-mongolia", "21": "asia/china/liaoning",
    "22": "asia/china/jilin", "23": "asia/china/heilongjiang", "31": "asia/china/shanghai",
    "32": "asia/china/jiangsu", "33": "asia/china/zhejiang", "34": "asia/china/anhui",
    "35": "asia/china/fujian", "36": "asia/china/jiangxi", "37": "asia/china/shandong",
    "41": "asia/china/henan", "42": "asia/china/hubei", "43": "asia/china/hunan",
    "44": "asia/china/guangdong", "45": "asia/china/guangxi", "46": "asia/china/hainan",
    "50": "asia/china/chongqing", "51": "asia/china/sichuan", "52": "asia/china/guizhou",
    "53": "asia/china/yunnan", "54": "asia/china/tibet", "61": "asia/china/shaanxi",
    "62": "asia/china/gansu", "63": "asia/china/qinghai", "64": "asia/china/ningxia",
    "65": "asia/china/xinjiang", "71": "asia/taiwan", "81": "asia/china/hong-kong",
    "82": "asia/china/macau",
}
#: Chinese province names (short forms) → the same two-digit keys.
_PROVINCE_ZH: dict[str, str] = {
    "北京": "11", "天津": "12", "河北": "13", "山西": "14", "内蒙古": "15", "辽宁": "21", "吉林": "22",
    "黑龙江": "23", "上海": "31", "江苏": "32", "浙江": "33", "安徽": "34", "福建": "35", "江西": "36",
    "山东": "37", "河南": "41", "湖北": "42", "湖南": "43", "广东": "44", "广西": "45", "海南": "46",
    "重庆": "50", "四川": "51", "贵州": "52", "云南": "53", "西藏": "54", "陕西": "61", "甘肃": "62",
    "青海": "63", "宁夏": "64", "新疆": "65", "台湾": "71", "香港": "81", "澳门": "82",
}


# --------------------------------------------------------------------------------------------
# URL helpers
# --------------------------------------------------------------------------------------------


def _iso3(iso3: str) -> str:
    code = str(iso3).strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise InputError(
            f"国家代码应为三个字母的 ISO 代码（如 CHN），而不是 {iso3!r}。",
            f"the country code must be a three-letter ISO code such as CHN, not {iso3!r}.",
            field="iso3",
        )
    return code


def worldpop_population_url(
    iso3: str = "CHN",
    year: int = 2020,
    *,
    constrained: bool = False,
    un_adjusted: bool = False,
    release: str = "BSGM",
) -> str:
    """URL of a WorldPop 100 m population-count raster (persons per cell) for one country.

    **Unverified pattern** (see the module docstring): WorldPop "Global 2000–2020" folders.

    Parameters
    ----------
    iso3 : str
        ISO 3166 alpha-3 country code, e.g. ``"CHN"``.
    year : int
        2000–2020 for unconstrained rasters; constrained rasters exist for 2020 only.
    constrained : bool
        Constrained rasters put people only in built-up cells (usually better for rural counties).
    un_adjusted : bool
        Use the version scaled to UN national totals (``_UNadj``).
    release : str
        Sub-folder of the constrained release (``"BSGM"`` for most countries, ``"maxar_v1"`` for
        some); ignored for unconstrained rasters.

    Returns
    -------
    str
    """
    code = _iso3(iso3)
    low = code.lower()
    adj = "_UNadj" if un_adjusted else ""
    if constrained:
        if int(year) != 2020:
            raise InputError(
                "WorldPop 的约束型（constrained）人口栅格只有 2020 年；请改用 year=2020 或非约束型。",
                "WorldPop constrained rasters exist for 2020 only; use year=2020 or unconstrained.",
                field="year",
            )
        return (
            f"{WORLDPOP_BASE}/Population/Global_2000_2020_Constrained/2020/{release}/{code}/"
            f"{low}_ppp_2020{adj}_constrained.tif"
        )
    return f"{WORLDPOP_BASE}/Population/Global_2000_2020/{int(year)}/{code}/{low}_ppp_{int(year)}{adj}.tif"


def worldpop_agesex_url(
    iso3: str,
    sex: str,
    age: int,
    year: int = 2020,
    *,
    constrained: bool = False,
    release: str = "BSGM",
) -> str:
    """URL of one WorldPop 100 m age/sex raster (persons of that sex and age band per cell).

    **Unverified pattern** (see the module docstring).

    Parameters
    ----------
    iso3 : str
        ISO alpha-3 country code.
    sex : {"f", "m"}
        Female or male.
    age : int
        Lower bound of the band: one of :data:`WORLDPOP_AGES` (0 = under 1, 1 = 1–4, 5 = 5–9, …,
        80 = 80 and over).
    year : int
        2000–2020 (constrained: 2020 only).
    constrained : bool
        Constrained (built-up cells only) or unconstrained.
    release : str
        Sub-folder of the constrained release (``"BSGM"`` or ``"maxar_v1"``).

    Returns
    -------
    str
    """
    code = _iso3(iso3)
    low = code.lower()
    s = str(sex).strip().lower()[:1]
    if s not in ("f", "m") or int(age) not in WORLDPOP_AGES:
        raise InputError(
            f"WorldPop 年龄/性别栅格需要 sex 为 f 或 m、age 为 {WORLDPOP_AGES} 之一（收到 {sex!r}, {age!r}）。",
            f"WorldPop age/sex rasters need sex f or m and age one of {WORLDPOP_AGES} "
            f"(got {sex!r}, {age!r}).",
            field="age",
        )
    if constrained:
        return (
            f"{WORLDPOP_BASE}/AgeSex_structures/Global_2000_2020_Constrained/2020/{release}/{code}/"
            f"{low}_{s}_{int(age)}_2020_constrained.tif"
        )
    return (
        f"{WORLDPOP_BASE}/AgeSex_structures/Global_2000_2020/{int(year)}/{code}/"
        f"{low}_{s}_{int(age)}_{int(year)}.tif"
    )


def worldpop_density_url(iso3: str, year: int = 2020) -> str:
    """URL of a WorldPop 1 km population-density raster (persons/km²), e.g. ``mac_pd_2020_1km.tif``.

    **Unverified pattern** (see the module docstring).

    Parameters
    ----------
    iso3 : str
        ISO alpha-3 country code.
    year : int
        2000–2020.

    Returns
    -------
    str
    """
    code = _iso3(iso3)
    return (
        f"{WORLDPOP_BASE}/Population_Density/Global_2000_2020_1km/{int(year)}/{code}/"
        f"{code.lower()}_pd_{int(year)}_1km.tif"
    )


def geofabrik_url(province: str, *, kind: str = "pbf") -> str:
    """URL of the Geofabrik OpenStreetMap extract of a Chinese province.

    Parameters
    ----------
    province : str
        Geofabrik name (``"gansu"``), Chinese name (``"甘肃"`` or ``"甘肃省"``), or any adcode of the
        province (``"62"``, ``"620000"``, ``"620802"``).
    kind : {"pbf", "shp"}
        ``"pbf"`` for ``<province>-latest.osm.pbf``, ``"shp"`` for the "free" shapefiles
        ``<province>-latest-free.shp.zip``.

    Returns
    -------
    str
        e.g. ``https://download.geofabrik.de/asia/china/gansu-latest.osm.pbf``.
    """
    key = str(province).strip()
    path = None
    if re.fullmatch(r"\d{2}(\d{4})?", key):
        path = GEOFABRIK_CHINA.get(key[:2])
    else:
        zh = re.sub(r"(省|市|自治区|特别行政区|壮族|回族|维吾尔)+$", "", key)
        zh = re.sub(r"(壮族|回族|维吾尔)$", "", zh)
        if zh in _PROVINCE_ZH:
            path = GEOFABRIK_CHINA[_PROVINCE_ZH[zh]]
        else:
            slug = key.lower().replace("_", "-").replace(" ", "-")
            for p in GEOFABRIK_CHINA.values():
                if p.rsplit("/", 1)[1] == slug:
                    path = p
    if path is None:
        raise InputError(
            f"不认识的省份 {province!r}：请用 Geofabrik 名称（如 gansu）、中文名（如 甘肃）或行政区划代码。",
            f"unknown province {province!r}: use a Geofabrik name (e.g. gansu), a Chinese name "
            f"(e.g. 甘肃) or an adcode.",
            field="province",
        )
    if kind == "pbf":
        return f"{GEOFABRIK_BASE}/{path}-latest.osm.pbf"
    if kind == "shp":
        return f"{GEOFABRIK_BASE}/{path}-latest-free.shp.zip"
    raise InputError(
        f"kind 应为 'pbf' 或 'shp'，而不是 {kind!r}。", f"kind must be 'pbf' or 'shp', not {kind!r}.",
        field="kind",
    )


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


def filename_from_url(url: str) -> str:
    """The file name a URL is saved under: the last path segment, percent-decoded.

    Parameters
    ----------
    url : str

    Returns
    -------
    str
    """
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise InputError(
            f"无法从网址 {url} 得到文件名；请给出以文件名结尾的网址。",
            f"cannot get a file name from the URL {url}; give a URL that ends in a file name.",
            field="url",
        )
    return name


def sha256sum(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks.

    Parameters
    ----------
    path : str or Path
    chunk : int
        Bytes read at a time.

    Returns
    -------
    str
        64 lower-case hex digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _norm_sha(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    s = str(sha256).strip().lower()
    s = s.removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", s):
        raise InputError(
            f"sha256 校验值应为 64 位十六进制数，而不是 {sha256!r}。",
            f"the sha256 checksum must be 64 hex digits, not {sha256!r}.",
            field="sha256",
        )
    return s


def _offline(url: str, name: str, folder: Path, sha: str | None) -> Path:
    src = folder / name
    if not src.is_file():
        raise InputError(
            f"离线模式：在 {folder} 中找不到 {name}（应放在 {src}）。请在有网络的电脑上下载 {url}，"
            f"把文件复制到该文件夹；或取消离线模式（不设 offline_dir 和环境变量 {OFFLINE_ENV}）。",
            f"offline mode: {name} is not in {folder} (expected at {src}). Download {url} on a "
            f"computer with internet and copy the file into that folder, or turn offline mode off "
            f"(no offline_dir and no {OFFLINE_ENV} variable).",
            file=src,
        )
    if sha is not None:
        got = sha256sum(src)
        if got != sha:
            raise InputError(
                f"离线文件 {src} 的校验值不符（应为 {sha}，实为 {got}）：文件可能不完整或版本不同。"
                f"请重新下载 {url} 并替换它。",
                f"the offline file {src} has the wrong checksum (expected {sha}, got {got}): it may "
                f"be incomplete or a different version. Download {url} again and replace it.",
                file=src,
            )
    return src


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """Parse ``bytes START-END/TOTAL`` or ``bytes */TOTAL`` → (start, total)."""
    if not value:
        return None, None
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value)
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


class _Progress:
    """A rich progress bar, or nothing when ``progress=False``."""

    def __init__(self, enabled: bool, name: str) -> None:
        self.enabled = enabled
        self.name = name
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                TransferSpeedColumn,
            )

            bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), transient=False,
            )
            bar.__enter__()
            self.bar = bar
            self.task = bar.add_task(self.name, total=None)
        return self

    def update(self, *, completed: int, total: int | None) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=completed, total=total)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.bar is not None:
            self.bar.__exit__(exc_type, exc, tb)


class _Interrupted(Exception):
    """The connection broke mid-transfer; what arrived is kept in the .part file."""


def _download_once(
    url: str, part: Path, *, chunk: int, timeout: float, bar: _Progress
) -> None:
    """One HTTP request: continue ``part`` (Range) or start it again. Raises on failure."""
    have = part.stat().st_size if part.exists() else 0
    total: int | None
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have > 0:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https only, checked)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have > 0:
            _, total = _content_range(err.headers.get("Content-Range"))
            err.close()
            if total is not None and total == have:
                return  # the .part file was already complete
            part.unlink(missing_ok=True)  # our partial file is not a prefix of theirs: restart
            raise _Interrupted("range not satisfiable; restarting") from None
        raise
    with resp:
        status = resp.status
        if status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != have:
                # A 206 for another range than asked: do not trust the partial file.
                part.unlink(missing_ok=True)
                raise _Interrupted("server answered a different range; restarting")
            mode = "ab"
        else:  # 200: the whole file (servers that ignore Range land here too)
            have = 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        done = have
        bar.update(completed=done, total=total)
        with open(part, mode) as fh:
            try:
                while True:
                    block = resp.read(chunk)
                    if not block:
                        break
                    fh.write(block)
                    done += len(block)
                    bar.update(completed=done, total=total)
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as err:
                if isinstance(err, http.client.IncompleteRead) and err.partial:
                    fh.write(err.partial)
                raise _Interrupted(str(err)) from None
        if total is not None and done != total:
            raise _Interrupted(f"got {done} of {total} bytes")


def fetch(
    url: str,
    dest_dir: str | Path,
    *,
    sha256: str | None = None,
    offline_dir: str | Path | None = None,
    progress: bool = True,
    chunk: int = 1 << 20,
    timeout: float = 60,
    retries: int = 3,
) -> Path:
    """Download ``url`` into ``dest_dir`` (resumable, cached, checksummed) and return the local path.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` address; the file keeps its last path segment as its name.
    dest_dir : str or Path
        Cache folder (created if missing). Partial downloads sit there as ``<name>.part``.
    sha256 : str, optional
        Expected SHA-256 (64 hex digits). Without it a cached file is trusted as it is and a
        download is checked only against the server's ``Content-Length``.
    offline_dir : str or Path, optional
        Offline mode: return ``offline_dir/<name>`` (checked against ``sha256`` when given) and never
        touch the network. Defaults to the environment variable ``COVPLAN_OFFLINE_DIR``.
    progress : bool
        Show a rich progress bar.
    chunk : int
        Bytes read per step.
    timeout : float
        Socket timeout in seconds for connecting and for each read.
    retries : int
        How many times a broken transfer is continued (with ``Range``) within this call.

    Returns
    -------
    Path
        The complete file (in ``dest_dir``, or in the offline folder in offline mode).

    Raises
    ------
    coverage.errors.InputError
        Bilingual message naming the URL or file and what to do: HTTP errors (e.g. 404), network
        failures, a checksum mismatch (the bad file is deleted), or a file missing in offline mode.
    """
    sha = _norm_sha(sha256)
    name = filename_from_url(url)
    off = offline_dir if offline_dir is not None else os.environ.get(OFFLINE_ENV) or None
    if off is not None:
        return _offline(url, name, Path(off), sha)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise InputError(
            f"只能下载 http/https 网址，而不是 {url}。本地文件请直接给出路径。",
            f"only http/https URLs can be downloaded, not {url}. Give local files as paths.",
            field="url",
        )
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / name
    part = dest_dir / (name + PART_SUFFIX)

    if dest.is_file():
        if sha is None or sha256sum(dest) == sha:
            return dest  # cache hit: no request at all
        dest.unlink()  # stale or corrupted cache: download again

    attempts = max(0, int(retries)) + 1
    last: str = ""
    with _Progress(progress, name) as bar:
        for _ in range(attempts):
            try:
                _download_once(url, part, chunk=chunk, timeout=timeout, bar=bar)
                break
            except _Interrupted as err:
                last = str(err)
                continue
            except urllib.error.HTTPError as err:
                code, reason = err.code, err.reason
                err.close()
                raise InputError(
                    f"下载失败：{url} 返回 HTTP {code}（{reason}）。请检查网址是否正确、文件是否已改名"
                    f"（数据门户会调整目录）；也可以在别处下载后用离线模式（offline_dir 或环境变量 "
                    f"{OFFLINE_ENV}）提供该文件。",
                    f"download failed: {url} answered HTTP {code} ({reason}). Check that the URL is "
                    f"right and the file was not moved (data portals reorganise folders), or download "
                    f"it elsewhere and supply it in offline mode (offline_dir or {OFFLINE_ENV}).",
                    field="url",
                ) from None
            except (urllib.error.URLError, OSError) as err:
                cause = getattr(err, "reason", err)
                raise InputError(
                    f"无法连接 {url}（{cause}）。请检查网络或代理；没有网络时请在别处下载该文件并用离线模式"
                    f"（offline_dir 或环境变量 {OFFLINE_ENV}）提供。已下载的部分保存在 {part}，下次会续传。",
                    f"cannot reach {url} ({cause}). Check the network or proxy; without internet, "
                    f"download the file elsewhere and supply it in offline mode (offline_dir or "
                    f"{OFFLINE_ENV}). What arrived is kept in {part} and will be resumed next time.",
                    field="url",
                ) from None
        else:
            raise InputError(
                f"下载 {url} 多次中断（{last}）。已下载的部分保存在 {part}；请稍后重新运行以续传。",
                f"the download of {url} broke off {attempts} times ({last}). What arrived is kept "
                f"in {part}; run again later to resume.",
                file=part,
            )

    if sha is not None:
        got = sha256sum(part)
        if got != sha:
            part.unlink(missing_ok=True)
            raise InputError(
                f"{url} 下载后的校验值不符（应为 {sha}，实为 {got}），已删除该文件。请确认校验值与文件版本"
                f"一致（数据门户可能已更新文件），然后重新下载。",
                f"the file downloaded from {url} has the wrong checksum (expected {sha}, got {got}) "
                f"and was deleted. Check that the checksum belongs to this version of the file (the "
                f"portal may have updated it), then download again.",
                file=dest,
            )
    os.replace(part, dest)
    return dest
