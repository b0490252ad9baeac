#!/usr/bin/env python3
"""Build the QGIS plugin zip, deploy it into a QGIS profile, or update the translations.

    python scripts/package_plugin.py                  # -> dist/terrafusion_plugin.zip
    python scripts/package_plugin.py --deploy         # ... and unpack it into the default
                                                      #     QGIS profile's plugin folder
    python scripts/package_plugin.py --update-ts      # refresh i18n/terrafusion_*.ts
    python scripts/package_plugin.py --update-ts de   # ... and start a German one

The zip holds one folder, ``terrafusion_plugin/``: the plugin code, ``metadata.txt``
(its ``version`` is the agent's ``__version__``, the one source of the version),
``LICENSE``, ``THIRD-PARTY.txt`` (each bundled library, its version and licence, read
from its metadata), ``resources/`` (icons, ``.ui`` files, layer styles), the compiled
``i18n/*.qm``, ``agent/`` with the agent unpacked from its wheel (migrations and
``.dist-info`` included) and ``ext/`` with third-party packages only. Only pure-Python
wheels go into ``ext/``, so the same zip runs on every platform QGIS runs on; they are
pinned to releases that still support Python 3.9, the oldest Python that QGIS 3.22
ships with.

Before the zip is written, the folder goes through the scan that the QGIS plugin
repository runs on every upload (Bandit and detect-secrets, with the rules it enables),
with the two configuration files that it honours: ``.bandit`` (from the repository,
leaving ``ext/`` out) and ``.secrets.baseline`` (written here: the example URLs in the
bundled libraries' documentation, acknowledged). A finding of a rule that the repository
makes mandatory fails the build; the findings of rules that an uploader may skip are
listed with the rules to skip.

On failure it prints one sentence to stderr and exits with 1.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
PLUGIN = "terrafusion_plugin"
DEFAULT_ZIP = REPO / "dist" / f"{PLUGIN}.zip"


def default_plugins_dir() -> Path:
    """The default QGIS 3 profile's plugin folder on this platform."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "QGIS" / "QGIS3" / "profiles" / "default" / "python" / "plugins"


#: oldest Python among the QGIS builds the plugin supports (qgisMinimumVersion=3.22)
BUNDLE_PYTHON = "3.9"
#: pure-Python wheels (py3-none-any) for ext/; pip refuses anything else
BUNDLED = (
    "psycopg==3.2.10",
    "sqlalchemy==2.0.44",
    "alembic==1.16.5",
    "mako==1.3.10",
    "apscheduler==3.11.0",
    "tzlocal==5.3.1",
    "tzdata==2025.2",            # zoneinfo's time zones where the OS has none (Windows)
    "platformdirs==4.4.0",
    "waitress==3.0.2",
    "werkzeug==3.1.3",
    "filelock==3.19.1",
    "prometheus-client==0.23.1",  # /metrics
    "typing_extensions==4.15.0",
    "tomli==2.2.1",              # tomllib before Python 3.11
    "packaging==25.0",           # the plugin checks the agent's requirements with it
    "tomlkit==0.15.2",           # the Settings dialog edits the file, comments and all
)
#: packages published only with C speedups, which they can do without: their Python
#: modules are taken from one fixed platform wheel and the compiled parts left out
PURE_FALLBACK = {"markupsafe==3.0.2": ("manylinux_2_17_x86_64", "_speedups")}

MAX_ZIP_BYTES = 25_000_000  # the QGIS plugin repository's upload limit
BINARY_SUFFIXES = (".so", ".pyd", ".dylib", ".dll", ".exe", ".pyc", ".pyo")
FORBIDDEN_DIRS = ("__pycache__", ".git", "__MACOSX", ".pytest_cache", ".ruff_cache")
#: the plugin repository's scanners read these from the zip (and allow them as hidden files)
BANDIT_CONFIG = ".bandit"
SECRETS_BASELINE = ".secrets.baseline"
THIRD_PARTY_NOTICE = "THIRD-PARTY.txt"
REQUIRED_METADATA = ("name", "description", "about", "version", "qgisMinimumVersion",
                     "qgisMaximumVersion",
                     "author", "email", "repository", "tracker")


class PackagingError(Exception):
    """Packaging failed; the message is one sentence for the user."""


# --- tools -------------------------------------------------------------------------------


def find_tool(*names: str) -> str:
    """The first of ``names`` on PATH or in Qt's usual bin folders."""
    extra = [Path("/usr/lib/qt5/bin"), Path("/usr/lib/x86_64-linux-gnu/qt5/bin")]
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for folder in extra:
            if (folder / name).is_file():
                return str(folder / name)
    raise PackagingError(f"{names[0]} was not found; install it (Debian: apt-get install "
                         "qttools5-dev-tools pyqt5-dev-tools).")


def run(cmd: Sequence[str], what: str, cwd: Optional[Path] = None) -> None:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        reason = lines[-1].strip() if lines else f"exit code {proc.returncode}"
        raise PackagingError(f"{what} failed: {reason.rstrip('.')}.")


def pip(*args: str, what: str) -> None:
    run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--quiet"], what)


# --- the parts of the plugin folder ------------------------------------------------------


def _ignore(_folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n in FORBIDDEN_DIRS or n.endswith(BINARY_SUFFIXES)
            or n.endswith(".egg-info") or n.startswith(".")]


def _ignore_in_plugin(folder: str, names: list[str]) -> list[str]:
    # agent/ and ext/ are made afresh, never copied from a plugin folder deployed in place;
    # the scanners' configuration is the one dotfile the zip keeps (the baseline is made
    # afresh too, for the libraries bundled now)
    top = Path(folder) == REPO / PLUGIN
    made = ("agent", "ext", SECRETS_BASELINE, THIRD_PARTY_NOTICE) if top else ()
    return [n for n in _ignore(folder, names) if not (top and n == BANDIT_CONFIG)] + [
        n for n in names if n in made]


def write_metadata(dest: Path, version: str) -> None:
    """The repository's metadata.txt with ``version`` added to its [general] section."""
    text = (REPO / "metadata.txt").read_text(encoding="utf-8")
    if re.search(r"^version\s*=", text, re.MULTILINE):
        raise PackagingError("metadata.txt must not set version: it is the agent's "
                             "__version__ (agent/terrafusion_agent/__init__.py).")
    text, found = re.subn(r"^\[general\]\n", f"[general]\nversion={version}\n", text,
                          count=1, flags=re.MULTILINE)
    if not found:
        raise PackagingError("metadata.txt has no [general] section.")
    dest.write_text(text, encoding="utf-8")


def check_metadata(path: Path) -> dict[str, str]:
    """The [general] section of metadata.txt, refusing what the plugin repository refuses."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
        general = dict(parser["general"])
    except (OSError, KeyError, configparser.Error) as exc:
        raise PackagingError(f"{path} cannot be read as plugin metadata: {exc}.") from None
    missing = [key for key in REQUIRED_METADATA if not general.get(key, "").strip()]
    if missing:
        raise PackagingError(f"metadata.txt lacks {', '.join(missing)}.")
    if "/" in general["author"]:
        raise PackagingError("metadata.txt's author must not contain a slash.")
    return general


def compile_translations(dest: Path) -> list[Path]:
    """Compile every ``i18n/*.ts`` into ``dest`` with lrelease."""
    sources = sorted((REPO / "i18n").glob("*.ts"))
    if not sources:
        return []
    lrelease = find_tool("lrelease", "lrelease-qt5")
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for ts in sources:
        qm = dest / f"{ts.stem}.qm"
        run([lrelease, "-silent", str(ts), "-qm", str(qm)], f"lrelease of {ts.name}")
        out.append(qm)
    return out


def _project_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace(
        "_", "-")


def unbundled_dependencies() -> list[str]:
    """The agent's dependencies (``pyproject.toml``) that :data:`BUNDLED` does not pin."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(REPO / "pyproject.toml", "rb") as fh:
        needed = tomllib.load(fh)["project"]["dependencies"]
    pinned = {_project_name(r) for r in (*BUNDLED, *PURE_FALLBACK)}
    return [r for r in needed if _project_name(r) not in pinned]


def install_dependencies(ext: Path) -> None:
    """Install the pinned pure-Python dependencies into ``ext``."""
    missing = unbundled_dependencies()
    if missing:
        raise PackagingError(f"The agent needs {missing[0]}, which BUNDLED in "
                             "scripts/package_plugin.py does not pin.")
    pip("install", "--target", str(ext), "--no-deps", "--no-compile",
        "--only-binary=:all:", "--platform", "any", "--implementation", "py", "--abi", "none",
        "--python-version", BUNDLE_PYTHON, "--no-warn-script-location", *BUNDLED,
        what="pip install of the bundled dependencies")
    for requirement, (platform, compiled) in PURE_FALLBACK.items():
        with tempfile.TemporaryDirectory() as tmp:
            pip("download", "--no-deps", "--only-binary=:all:", "--platform", platform,
                "--python-version", BUNDLE_PYTHON, "--dest", tmp, requirement,
                what=f"pip download of {requirement}")
            wheels = list(Path(tmp).glob("*.whl"))
            if len(wheels) != 1:
                raise PackagingError(f"pip download of {requirement} gave no single wheel.")
            _unpack_pure(wheels[0], ext, compiled)
    # console scripts carry this machine's interpreter path and are not needed
    shutil.rmtree(ext / "bin", ignore_errors=True)


def _unpack_pure(wheel: Path, ext: Path, compiled: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            leaf = name.rsplit("/", 1)[-1]
            # RECORD and WHEEL describe the platform wheel, which this no longer is.
            if leaf.startswith(compiled) or leaf in ("RECORD", "WHEEL"):
                continue
            zf.extract(name, ext)


#: what the agent's wheel is built from, beside agent/
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE")


def _isolated_build_needed() -> bool:
    """True unless this Python's setuptools is as new as pyproject.toml asks."""
    wanted = re.search(r'"setuptools>=(\d+)', (REPO / "pyproject.toml").read_text("utf-8"))
    try:
        have = int(metadata.version("setuptools").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return True
    return wanted is None or have < int(wanted.group(1))


def build_agent_wheel(dest: Path) -> Path:
    """Build the agent's wheel into ``dest``; returns its path.

    It is built from a copy of the sources: a build in the checkout leaves ``build/``
    behind, and the next build would ship a file deleted since from there. Without
    build isolation when this Python's setuptools will do (make setup installs one),
    so that no package index is needed.
    """
    if not (REPO / "agent" / "terrafusion_agent" / "__init__.py").is_file():
        raise PackagingError(f"The agent package is missing from {REPO / 'agent'}.")
    with tempfile.TemporaryDirectory(prefix="terrafusion-wheel-") as tmp:
        source = Path(tmp)
        for name in WHEEL_SOURCES:
            shutil.copy2(REPO / name, source / name)
        shutil.copytree(REPO / "agent", source / "agent", ignore=_ignore)
        isolation = [] if _isolated_build_needed() else ["--no-build-isolation"]
        pip("wheel", "--no-deps", *isolation, "--wheel-dir", str(dest), str(source),
            what="the build of the agent's wheel")
    wheels = sorted(dest.glob("terrafusion_agent-*.whl"))
    if len(wheels) != 1:
        raise PackagingError(f"The build of the agent's wheel left {len(wheels)} wheels "
                             f"in {dest}.")
    return wheels[0]


def install_agent(agent_dir: Path) -> str:
    """Unpack the agent's wheel into ``agent_dir`` (the package and its ``.dist-info``,
    whose requirements the plugin checks at load); returns the agent's version."""
    with tempfile.TemporaryDirectory(prefix="terrafusion-wheel-") as tmp:
        with zipfile.ZipFile(build_agent_wheel(Path(tmp))) as zf:
            zf.extractall(agent_dir)
    dist_info = list(agent_dir.glob("terrafusion_agent-*.dist-info"))
    if len(dist_info) != 1:
        raise PackagingError("The agent's wheel holds no single terrafusion_agent .dist-info.")
    return metadata.PathDistribution(dist_info[0]).version


def stage(root: Path) -> Path:
    """Lay out the plugin folder under ``root``; returns it."""
    folder = root / PLUGIN
    shutil.copytree(REPO / PLUGIN, folder, ignore=_ignore_in_plugin)
    for name in ("metadata.txt", "LICENSE"):
        if not (REPO / name).is_file():
            raise PackagingError(f"{name} is missing from the repository.")
    version = install_agent(folder / "agent")
    write_metadata(folder / "metadata.txt", version)
    check_metadata(folder / "metadata.txt")
    shutil.copy2(REPO / "LICENSE", folder / "LICENSE")
    for sub in ("icons", "ui", "styles"):
        shutil.copytree(REPO / "resources" / sub, folder / "resources" / sub, ignore=_ignore)
    compile_translations(folder / "i18n")
    install_dependencies(folder / "ext")
    write_third_party_notice(folder)
    for cache in list(folder.rglob("__pycache__")):
        shutil.rmtree(cache)
    return folder


def check_tree(folder: Path) -> None:
    """Refuse what the QGIS plugin repository refuses, compiled code, and first-party
    code in ``ext/`` (where its top-level names could collide with a dependency's)."""
    for name in ("terrafusion_agent", PLUGIN):
        if (folder / "ext" / name).exists():
            raise PackagingError(f"ext/ must hold only third-party packages, not {name}.")
    for path in folder.rglob("*"):
        rel = path.relative_to(folder.parent).as_posix()
        if path.name in FORBIDDEN_DIRS or ".." in rel:
            raise PackagingError(f"The plugin folder must not contain {rel}.")
        if path.is_file() and path.name.lower().endswith(BINARY_SUFFIXES):
            raise PackagingError(f"The plugin folder must not contain the binary {rel}.")


# --- the plugin repository's upload scan ---------------------------------------------------

# plugins.qgis.org scans every uploaded zip (QGIS-Plugins-Website, plugins/security_scanner.py
# with the rules of plugins/management/commands/data/*_rules.json). Bandit runs as
# ``bandit -r DIR -f json --quiet -t ENABLED``, detect-secrets as ``detect-secrets scan
# --all-files --exclude-files metadata\.txt --exclude-files \.secrets\.baseline
# [--baseline FOUND] .`` with the disabled detectors turned off. Any finding of either
# blocks the upload, except those of a rule the uploader skips; only the rules below
# marked skippable may be skipped (an upload through XML-RPC skips all of them).

#: Bandit tests the repository enables and an uploader cannot skip
BANDIT_MANDATORY = (
    "B102", "B103", "B105", "B106", "B107", "B111", "B201", "B202", "B301", "B302", "B304",
    "B305", "B306", "B307", "B312", "B321", "B323", "B401", "B402", "B412", "B413", "B501",
    "B502", "B503", "B505", "B506", "B507", "B601", "B602", "B604", "B605", "B609", "B610",
    "B611", "B612", "B613", "B615", "B701")
#: Bandit tests the repository enables and an uploader may skip
BANDIT_SKIPPABLE = (
    "B101", "B104", "B108", "B110", "B112", "B113", "B303", "B308", "B310", "B311", "B313",
    "B314", "B315", "B316", "B317", "B318", "B319", "B320", "B324", "B403", "B405", "B406",
    "B407", "B408", "B409", "B504", "B508", "B509", "B603", "B606", "B607", "B608", "B614",
    "B702", "B703", "B704")
#: detect-secrets detectors the repository disables
SECRETS_DISABLED = ("IPPublicDetector",)
#: detect-secrets types (as reported) of the detectors an uploader may skip
SECRETS_SKIPPABLE_TYPES = ("Base64 High Entropy String", "Hex High Entropy String",
                           "Secret Keyword")
#: what the repository's scanner passes to detect-secrets besides the folder
SECRETS_ARGS = ("scan", "--all-files", "--exclude-files", r"metadata\.txt",
                "--exclude-files", r"\.secrets\.baseline")


def _scanner(module: str, package: str) -> list[str]:
    try:
        metadata.version(package)
    except metadata.PackageNotFoundError:
        raise PackagingError(f"{package} is not installed in {sys.executable}; make setup "
                             f"installs it (or: pip install {package}).") from None
    return [sys.executable, "-m", module]


def _json_of(proc: subprocess.CompletedProcess, what: str) -> dict:
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        reason = lines[-1].strip() if lines else f"exit code {proc.returncode}"
        raise PackagingError(f"{what} gave no report: {reason.rstrip('.')}.") from None
    if not isinstance(report, dict):
        raise PackagingError(f"{what} gave no report.")
    return report


def bandit_findings(root: Path) -> list[dict]:
    """Bandit over ``root`` as the plugin repository runs it, with every rule it enables
    (its ``.bandit`` is found in the plugin folder); each finding as Bandit reports it."""
    tests = ",".join(BANDIT_MANDATORY + BANDIT_SKIPPABLE)
    proc = subprocess.run([*_scanner("bandit", "bandit"), "-r", str(root), "-f", "json",
                           "--quiet", "-t", tests], capture_output=True, text=True)
    report = _json_of(proc, "Bandit")
    if report.get("errors"):
        first = report["errors"][0]
        raise PackagingError(f"Bandit could not read {first.get('filename')}: "
                             f"{str(first.get('reason', '')).rstrip('.')}.")
    return list(report.get("results", []))


def secrets_findings(root: Path) -> tuple[dict[str, list[dict]], dict]:
    """detect-secrets over ``root`` as the plugin repository runs it, without a baseline:
    the findings by file (relative to ``root``) and the whole report."""
    disabled = [a for d in SECRETS_DISABLED for a in ("--disable-plugin", d)]
    proc = subprocess.run([*_scanner("detect_secrets", "detect-secrets"), *SECRETS_ARGS,
                           *disabled, "."], cwd=root, capture_output=True, text=True)
    report = _json_of(proc, "detect-secrets")
    report.pop("generated_at", None)
    return dict(report.get("results", {})), report


def _is_third_party(rel: str) -> bool:
    return rel.startswith(f"{PLUGIN}/ext/")


def scan_for_upload(folder: Path) -> list[str]:
    """Run the plugin repository's upload scan over the plugin ``folder`` and write its
    ``.secrets.baseline``; raise on a finding that would block the upload, return the
    skippable rules the upload has to skip (each with its count of findings)."""
    root = folder.parent
    if not (folder / BANDIT_CONFIG).is_file():
        raise PackagingError(f"The plugin folder has no {BANDIT_CONFIG}, which keeps the "
                             "plugin repository's Bandit scan to our own code.")
    blocking, skippable = [], {}
    for finding in bandit_findings(root):
        rel = Path(finding["filename"]).resolve().relative_to(root.resolve()).as_posix()
        rule = finding.get("test_id", "")
        if rule in BANDIT_MANDATORY:
            blocking.append(f"{rel}:{finding.get('line_number')}: {rule} "
                            f"{str(finding.get('issue_text', '')).rstrip('.')}")
        else:
            skippable[rule] = skippable.get(rule, 0) + 1
    results, report = secrets_findings(root)
    acknowledged = {}
    for rel, found in sorted(results.items()):
        if _is_third_party(rel):
            # Documentation examples in pinned releases from PyPI (``scott:tiger@host``
            # URLs, ``password="..."`` in docstrings): acknowledged, as detect-secrets
            # audits do, so that the repository reports only what is new.
            acknowledged[rel] = [dict(s, is_secret=False) for s in found]
            continue
        for secret in found:
            # a secret in our own code is never skipped, whichever detector found it
            blocking.append(f"{rel}:{secret.get('line_number')}: {secret.get('type')} "
                            "(detect-secrets)")
    if blocking:
        more = f" and {len(blocking) - 1} more" if len(blocking) > 1 else ""
        raise PackagingError("The plugin repository's upload scan would block the zip: "
                             f"{blocking[0]}{more} (mark a false positive with a "
                             "justified # nosec or # pragma: allowlist secret comment).")
    report["results"] = acknowledged
    report["filters_used"] = [*report.get("filters_used", []), {
        "path": "detect_secrets.filters.regex.should_exclude_file",
        "pattern": [rf"^{PLUGIN}/ext/"]}]
    (folder / SECRETS_BASELINE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n",
                                           encoding="utf-8")
    return [f"{rule} ({count})" for rule, count in sorted(skippable.items())]


# --- the notice of the bundled libraries ----------------------------------------------------


def _licence(meta: metadata.PackageMetadata) -> str:
    """The licence a distribution's metadata declares (SPDX expression first)."""
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return expression
    declared = (meta.get("License") or "").strip()
    if declared and "\n" not in declared and len(declared) <= 80 \
            and not declared.lower().startswith("copyright"):
        return declared
    classifiers = [c.rsplit("::", 1)[1].strip() for c in meta.get_all("Classifier") or []
                   if c.startswith("License :: OSI Approved ::")]
    return " OR ".join(classifiers)


def write_third_party_notice(folder: Path) -> Path:
    """``THIRD-PARTY.txt``: each package in ``ext/``, its version, licence, home and the
    licence files that ship beside it, from the packages' own metadata."""
    ext = folder / "ext"
    entries = []
    for dist_info in sorted(ext.glob("*.dist-info"), key=lambda p: p.name.lower()):
        meta = metadata.PathDistribution(dist_info).metadata
        name, version = meta["Name"], meta["Version"]
        licence = _licence(meta)
        if not licence:
            raise PackagingError(f"The bundled package {name} {version} declares no licence "
                                 "in its metadata; name it before bundling it.")
        urls = [u.split(",", 1)[1].strip() for u in meta.get_all("Project-URL") or []
                if u.lower().startswith(("homepage", "home", "source"))]
        home = (meta.get("Home-page") or "").strip() or (urls[0] if urls else "")
        files = sorted(p.relative_to(folder).as_posix() for p in dist_info.rglob("*")
                       if p.is_file() and re.match(r"(LICEN[CS]E|COPYING|NOTICE)",
                                                   p.name, re.IGNORECASE))
        entries.append(f"{name} {version}\n  Licence: {licence}\n"
                       + (f"  Home: {home}\n" if home else "")
                       + "".join(f"  Text: {f}\n" for f in files))
    if not entries:
        raise PackagingError("ext/ holds no package metadata (.dist-info) to list.")
    notice = folder / THIRD_PARTY_NOTICE
    notice.write_text(
        "TerraFusion for QGIS is licensed under the GNU General Public License, version 2 "
        "or later (LICENSE).\nIt bundles these third-party packages in ext/, each under its "
        "own licence; the texts named\nship in the package's .dist-info folder.\n\n"
        + "\n".join(entries), encoding="utf-8")
    return notice


def write_zip(folder: Path, out: Path) -> int:
    """Zip ``folder`` (as the single top folder) into ``out``; returns the size in bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder.parent).as_posix())
    size = partial.stat().st_size
    if size > MAX_ZIP_BYTES:
        partial.unlink()
        raise PackagingError(f"The zip would be {size / 1e6:.1f} MB, over the plugin "
                             f"repository's limit of {MAX_ZIP_BYTES / 1e6:.0f} MB.")
    os.replace(partial, out)
    return size


def build(out: Path, report: Callable[[str], None] = print) -> int:
    with tempfile.TemporaryDirectory(prefix="terrafusion-package-") as tmp:
        folder = stage(Path(tmp))
        check_tree(folder)
        to_skip = scan_for_upload(folder)
        if to_skip:
            report("The plugin repository's upload scan passes when the upload skips these "
                   f"rules (findings in our code, each reviewed): {', '.join(to_skip)}.")
        return write_zip(folder, out)


def deploy(zip_path: Path, plugins_dir: Path) -> Path:
    """Unpack the zip into a QGIS profile's plugin folder, replacing an older copy."""
    target = plugins_dir / PLUGIN
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        if not names or any(not n.startswith(f"{PLUGIN}/") or ".." in n for n in names):
            raise PackagingError(f"{zip_path} does not hold one {PLUGIN}/ folder.")
        plugins_dir.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        zf.extractall(plugins_dir)
    return target


# --- translations ------------------------------------------------------------------------

_PLUGIN_CONTEXT = "<name>TerraFusion</name>"
_PYLUPDATE_CONTEXT = "<name>@default</name>"


def update_translations(new_languages: Sequence[str] = ()) -> list[Path]:
    """Run pylupdate5 over the plugin sources and .ui files into ``i18n/terrafusion_*.ts``.

    pylupdate5 files a ``tr("...")`` call that is not a method under the context
    ``@default``, while the plugin's ``tr`` translates in the context ``TerraFusion``. So
    each .ts is handed to pylupdate5 with its context renamed to ``@default`` and renamed
    back afterwards; pylupdate5 itself keeps the existing translations.
    """
    pylupdate = find_tool("pylupdate5")
    i18n = REPO / "i18n"
    languages = {p.stem.split("_", 1)[1] for p in i18n.glob("terrafusion_*.ts")}
    languages.update(new_languages)
    if not languages:
        raise PackagingError("There is no i18n/terrafusion_*.ts yet; name a language.")
    sources = sorted(p for p in (REPO / PLUGIN).rglob("*.py") if "ext" not in p.parts)
    sources += sorted((REPO / "resources" / "ui").glob("*.ui"))
    rel = [os.path.relpath(p, i18n) for p in sources]
    for lang in languages:
        if not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", lang):
            raise PackagingError(f"{lang!r} is not a language code such as es or pt_BR.")
    written = []
    help_source = i18n / _CONFIG_HELP_SOURCE
    for lang in sorted(languages):
        ts = i18n / f"terrafusion_{lang}.ts"
        work = i18n / f".terrafusion_{lang}.work.ts"
        try:
            write_config_help_source(help_source)
            if ts.exists():
                work.write_text(ts.read_text(encoding="utf-8").replace(
                    _PLUGIN_CONTEXT, _PYLUPDATE_CONTEXT), encoding="utf-8")
            run([pylupdate, "-noobsolete", *rel, help_source.name, "-ts", work.name],
                "pylupdate5", cwd=i18n)
            text = work.read_text(encoding="utf-8").replace(_PYLUPDATE_CONTEXT, _PLUGIN_CONTEXT)
            text = text.replace(f'filename="{work.name}"', f'filename="{ts.name}"')
            text = re.sub(rf'filename="{re.escape(help_source.name)}" line="\d+"',
                          'filename="../agent/terrafusion_agent/config.py"', text)
            ts.write_text(text, encoding="utf-8")
        finally:
            work.unlink(missing_ok=True)
            help_source.unlink(missing_ok=True)
        written.append(ts)
    return written


_CONFIG_HELP_SOURCE = ".config_help.work.py"


def write_config_help_source(path: Path) -> None:
    """A throwaway Python file with ``tr("...")`` around the help of every configuration
    key: the Settings dialog shows the agent's help as tooltips, translated, and pylupdate5
    only collects strings written inside ``tr()``."""
    sys.path.insert(0, str(REPO / "agent"))
    from terrafusion_agent import config

    path.write_text("".join(f"tr({json.dumps(key.help, ensure_ascii=False)})\n"
                            for key in config.KEYS), encoding="utf-8")


# --- command line ------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_ZIP,
                        help=f"zip to write (default: {DEFAULT_ZIP.relative_to(REPO)})")
    parser.add_argument("--deploy", action="store_true",
                        help="also unpack the zip into the QGIS profile's plugin folder")
    parser.add_argument("--plugins-dir", type=Path, default=default_plugins_dir(),
                        help="plugin folder for --deploy (default: %(default)s)")
    parser.add_argument("--update-ts", nargs="*", metavar="LANG",
                        help="only update i18n/terrafusion_*.ts (and start those for LANG)")
    args = parser.parse_args(argv)
    try:
        if args.update_ts is not None:
            for ts in update_translations(args.update_ts):
                print(f"updated {ts.relative_to(REPO)}")
            return 0
        size = build(args.out)
        print(f"wrote {args.out} ({size / 1e6:.1f} MB)")
        if args.deploy:
            target = deploy(args.out, args.plugins_dir)
            print(f"deployed to {target}; restart QGIS or reload the plugin")
        return 0
    except PackagingError as exc:
        print(f"package_plugin: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"package_plugin: {where}{exc.strerror or exc}.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
