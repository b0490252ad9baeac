"""Export presets from the configuration, merged with what the caller asked for.

A preset says what may leave the office for one recipient (the public web site, a title
company...). What the caller adds can only narrow it: ``--where`` is combined with the
preset's filter, ``--fields`` must be among the preset's fields; the format and the CRS
may be changed. With a ``filename`` template the caller's ``out`` is the folder to write
into, and the template can never name a file outside it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

from terrafusion_agent.config import Config, ExportPreset
from terrafusion_agent.errors import InvalidExport
from terrafusion_agent.export.formats import FormatSpec, get_format
from terrafusion_agent.export.request import ExportRequest, refuse_nul


@dataclass(frozen=True)
class ResolvedRequest:
    """The request after its preset is applied: every value the engine needs."""

    table: str
    spec: FormatSpec
    out: Path
    crs: Optional[str]
    where: Optional[str]
    fields: Optional[tuple[str, ...]]
    renames: dict[str, str] = field(default_factory=dict)
    max_features: Optional[int] = None
    preset: Optional[str] = None
    overwrite: bool = False


def resolve(config: Config, request: ExportRequest,
            now: Optional[datetime] = None) -> ResolvedRequest:
    """Apply the named preset (if any) to ``request``; raises :class:`InvalidExport`."""
    refuse_nul(request)
    preset = _preset(config, request.preset) if request.preset else None
    if preset is None:
        if not request.table:
            raise InvalidExport("Name the table to export (or give a preset).")
        spec = get_format(request.format)
        return ResolvedRequest(
            table=request.table, spec=spec, out=_file_path(request.out, request.table, spec),
            crs=request.crs, where=_clean_where(request.where), fields=request.fields,
            overwrite=request.overwrite)

    if request.table and request.table != preset.table:
        raise InvalidExport(f"Preset {preset.name} exports table {preset.table}, "
                            f"not {request.table}.")
    spec = get_format(request.format or preset.format)
    fields = preset.fields
    if request.fields is not None:
        if preset.fields is not None:
            extra = [f for f in request.fields if f not in preset.fields]
            if extra:
                raise InvalidExport(
                    f"Preset {preset.name} does not export field {extra[0]}; it exports "
                    f"{', '.join(preset.fields)}.")
        fields = request.fields
    if preset.filename:
        out = _preset_path(request.out, preset, spec, now or datetime.now())
    else:
        out = _file_path(request.out, preset.table, spec)
    return ResolvedRequest(
        table=preset.table, spec=spec, out=out, crs=request.crs or preset.crs,
        where=_combine(_clean_where(preset.where), _clean_where(request.where)),
        fields=fields, renames=dict(preset.renames), max_features=preset.max_features,
        preset=preset.name, overwrite=request.overwrite)


def _preset(config: Config, name: str) -> ExportPreset:
    preset = config.presets.get(name)
    if preset is None:
        known = ", ".join(sorted(config.presets)) or "none are configured"
        raise InvalidExport(f"There is no export preset named {name!r} ({known}).")
    return preset


def _clean_where(where: Optional[str]) -> Optional[str]:
    return where if where and where.strip() else None


def _combine(first: Optional[str], second: Optional[str]) -> Optional[str]:
    if first and second:
        return f"({first}) AND ({second})"
    return first or second


def _require_out(out) -> Path:
    if out is None or not str(out).strip():
        raise InvalidExport("Name the output file with --out.")
    return Path(out).expanduser().absolute()


def _file_path(out, table: str, spec: FormatSpec) -> Path:
    """The file to write: ``out`` itself, ``out`` + the format's suffix, or, for a
    folder, ``<table><suffix>`` inside it."""
    path = _require_out(out)
    if path.is_dir():
        path = path / f"{table}{spec.extension}"
    elif not path.suffix:
        path = path.with_name(path.name + spec.extension)
    if spec.name == "shp" and path.suffix.lower() != ".zip":
        raise InvalidExport(
            f"A shapefile export is one .zip file (.shp, .shx, .dbf, .prj, .cpg); name the "
            f"output {path.with_suffix('.zip').name} instead of {path.name}.")
    return path


def _preset_path(out, preset: ExportPreset, spec: FormatSpec, now: datetime) -> Path:
    folder = _require_out(out)
    if folder.exists() and not folder.is_dir():
        raise InvalidExport(f"Preset {preset.name} names the file itself, so --out must be "
                            f"the folder to write into, and {folder} is a file.")
    name = render_filename(preset.filename or "", table=preset.table, preset=preset.name,
                           fmt=spec.name, now=now)
    if not Path(name).suffix:
        name += spec.extension
    path = folder / name
    # The config loader refuses such templates already; this guard covers presets built
    # in code and values substituted into the template.
    if path.parent != folder or name in (".", "..") or Path(name).name != name:
        raise InvalidExport(f"Preset {preset.name}'s file name {name!r} would leave the "
                            "output folder; a preset can only name a file inside it.")
    if spec.name == "shp" and path.suffix.lower() != ".zip":
        raise InvalidExport(f"Preset {preset.name} makes a shapefile, which is one .zip file, "
                            f"but its file name {name!r} does not end in .zip.")
    return path


def render_filename(template: str, *, table: str, preset: str, fmt: str,
                    now: datetime) -> str:
    """Fill a preset's file-name template; refuses one that names a path."""
    values = {
        "table": table, "preset": preset, "format": fmt,
        "date": now.strftime("%Y-%m-%d"), "time": now.strftime("%H%M%S"),
        "datetime": now.strftime("%Y%m%d-%H%M%S"),
    }
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        raise InvalidExport(f"Preset {preset}'s file name {template!r} is not a valid "
                            "template.") from None
    out = []
    for literal, name, spec, conversion in parts:
        out.append(literal)
        if name is None:
            continue
        if name not in values or spec or conversion:
            raise InvalidExport(f"Preset {preset}'s file name uses {{{name}}}; only "
                                f"{', '.join('{' + k + '}' for k in values)} may appear.")
        out.append(values[name])
    name = "".join(out)
    if any(c in name for c in "/\\:\0") or not name.strip(". "):
        raise InvalidExport(f"Preset {preset}'s file name {name!r} would leave the output "
                            "folder; a preset can only name a file inside it.")
    return name
