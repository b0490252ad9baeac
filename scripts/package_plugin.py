#!/usr/bin/env python3
"""Build the QGIS plugin zip, deploy it into a QGIS profile, or update the translations.

    python scripts/package_plugin.py                  # -> dist/terrafusion_plugin.zip
    python scripts/package_plugin.py --deploy         # ... and unpack it into the default
                                                      #     QGIS profile's plugin folder
    python scripts/package_plugin.py --update-ts      # refresh i18n/terrafusion_*.ts
    python scripts/package_plugin.py --update-ts de   # ... and start a German one

The zip holds one folder, ``terrafusion_plugin/``: the plugin code, ``metadata.txt``
(its ``version`` is the agent's ``__version__``, the one source of the version),
``LICENSE``, ``resources/`` (icons, ``.ui`` files, layer styles), the compiled
``i18n/*.qm``, ``agent/`` with the agent unpacked from its wheel (migrations and
``.dist-info`` included) and ``ext/`` with third-party packages only. Only pure-Python
wheels go into ``ext/``, so the same zip runs on every platform QGIS runs on; they are
pinned to releases that still support Python 3.9, the oldest Python that QGIS 3.22
ships with.

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
from typing import Optional, Sequence

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
REQUIRED_METADATA = ("name", "description", "about", "version", "qgisMinimumVersion",
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
    # agent/ and ext/ are made afresh, never copied from a plugin folder deployed in place
    made = ("agent", "ext") if Path(folder) == REPO / PLUGIN else ()
    return _ignore(folder, names) + [n for n in names if n in made]


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


def build(out: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="terrafusion-package-") as tmp:
        folder = stage(Path(tmp))
        check_tree(folder)
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
