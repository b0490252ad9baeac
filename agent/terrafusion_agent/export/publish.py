"""Atomic publication of an export: a file appears complete at its target, or not at all.

Any writer can use this: the export engine's GDAL writer, and a writer that writes the
file itself, such as the plugin's export of a project layer through QGIS::

    with atomic_output(out, FORMATS["gpkg"], overwrite=False, config=config) as output:
        write_the_file(output.path)          # a hidden temp file beside ``out``
        output.verify(features=written)      # text formats: cut short by a full disk?
    output.bytes                             # published: the size of ``out``

How, and why:

* The target is checked before anything is written (:func:`check_target`): its folder
  exists and can be written to (tried for real, since ``os.access`` says yes to root and
  on some network shares), and an existing file is replaced only with overwrite. With a
  configuration, the agent's own files are refused too (see :mod:`.protected`).
* The writer writes a hidden temp file next to the target (``.name.tf-*``: the same file
  system, so the rename is atomic), which is renamed into place only when complete.
  Everything an export makes starts with that one hidden prefix: the temp file, a
  shapefile's folder and .zip, the halves of a split export, and any side file GDAL or
  SQLite makes beside them. A failed or cancelled export removes all of it; a killed
  process's leftovers are found by the prefix later (:func:`remove_stale_temp_files`).
* Before the rename the file is flushed to the disk (``fsync``), so the rename publishes
  its bytes and a late write error (network shares, quotas) is heard while nothing is
  published yet; a text file is checked for features lost to a full disk
  (:meth:`TempOutput.verify`, see :mod:`.diskfull`). An operating-system error becomes
  one sentence, "the disk is full" whenever the disk is (:func:`failure`).
* Without overwrite the temp file is hard-linked to the target, which fails if a file
  appeared there meanwhile (a rename would replace it), and then unlinked; with
  overwrite it is renamed over the target.
* A shapefile is several files: its parts are written into a hidden folder and published
  as one .zip, in the order readers expect.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
from pathlib import Path
from typing import Callable, Iterator, Optional

from terrafusion_agent.config import Config
from terrafusion_agent.errors import ExportError, ExportNotPossible, InvalidExport
from terrafusion_agent.export import diskfull, protected
from terrafusion_agent.export.formats import FormatSpec
from terrafusion_agent.export.messages import fragment

#: marker in the names of temp files and folders, so stale ones can be recognised
TEMP_MARK = ".tf-"
#: zlib level for the shapefile .zip: level 6 takes 2.5x as long for a 15% smaller file
ZIP_LEVEL = 3


def check_target(final: Path, overwrite: bool) -> None:
    """Raise :class:`InvalidExport` unless ``final`` can be written: its folder exists
    and is writable, it is not a folder, and it does not exist unless ``overwrite``."""
    folder = final.parent
    if not folder.exists():
        raise InvalidExport(f"The folder {folder} does not exist.")
    if not folder.is_dir():
        raise InvalidExport(f"{folder} is not a folder.")
    if final.is_dir():
        raise InvalidExport(f"{final} is a folder; name the file to write.")
    if final.exists() and not overwrite:
        raise _exists(final)
    try:  # os.access says yes to root and on some network shares: try for real
        probe = folder / f".{final.name}{TEMP_MARK}probe-{secrets.token_hex(4)}"
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        if diskfull.is_full_error(exc):
            raise ExportNotPossible(str(diskfull.error(final))) from None
        raise ExportNotPossible(f"The folder {folder} is not writable "
                                f"({exc.strerror or exc.__class__.__name__}).") from None


def _exists(final: Path) -> InvalidExport:
    return InvalidExport(f"The file {final} already exists; export with overwrite "
                         "(--overwrite) to replace it.")


def failure(final: Path, exc: BaseException) -> ExportError:
    """An operating-system or SQLite error while writing ``final``, as one sentence."""
    if diskfull.is_full_error(exc) or diskfull.nearly_full(final.parent):
        return diskfull.error(final)
    reason = getattr(exc, "strerror", None) or fragment(str(exc)) or exc.__class__.__name__
    return ExportError(f"{final.name} could not be written in {final.parent}: {reason}.")


class TempOutput:
    """The hidden files of one export being written beside its target ``final``.

    ``spec`` decides the temp file's suffix (some GDAL drivers pick their mode from it)
    and whether the result is a zipped shapefile; ``layer`` names a shapefile's parts
    (default: the target's stem). Written from one thread at a time, except
    :meth:`written_bytes`, which any thread may call.
    """

    def __init__(self, final: Path, spec: FormatSpec, overwrite: bool = False,
                 layer: Optional[str] = None):
        self.final = Path(final)
        self.spec = spec
        self.overwrite = overwrite
        self.folder = self.final.parent
        #: the start of the name of everything this output makes
        self.prefix = f".{self.final.name}{TEMP_MARK}{secrets.token_hex(4)}"
        #: the file the writer writes (a shapefile: its parts, in :attr:`parts`)
        self.temp = self.folder / f"{self.prefix}{spec.gdal_extension}"
        self.parts = self.folder / f"{self.prefix}.d"
        self.packed = self.folder / f"{self.prefix}{spec.extension}"
        self.path = (self.parts / f"{layer or self.final.stem}{spec.gdal_extension}"
                     if self.shapefile else self.temp)
        #: the size of the published file, once published
        self.bytes: Optional[int] = None
        self._packing = False
        self._flushed = False

    @property
    def shapefile(self) -> bool:
        return self.spec.name == "shp"

    @property
    def written(self) -> Path:
        """The file that will be published: the temp file, or a shapefile's .zip."""
        return self.packed if self.shapefile else self.temp

    def start(self) -> Path:
        """Make what the writer needs (a shapefile's folder); returns :attr:`path`."""
        if self.shapefile:
            self.parts.mkdir()
        return self.path

    def written_bytes(self) -> int:
        """Bytes written so far, for progress: the .zip while a shapefile is packed, else
        every file of this output."""
        if self._packing:
            return _size(self.packed)
        return sum(_size(p) for p in _prefixed(self.folder, self.prefix))

    def pack(self) -> None:
        """Zip a shapefile's parts into the file to publish (nothing for other formats)."""
        if self.shapefile:
            self._packing = True
            zip_shapefile(self.parts, self.packed)

    def verify(self, features: int, recount: Optional[Callable[[], int]] = None) -> None:
        """Flush the finished file to the disk and make sure it holds all ``features``
        (text formats; see :func:`diskfull.incomplete` for ``recount``): a file cut
        short is an error, never an export. Raises OSError or :class:`ExportError`."""
        if self.shapefile and not self._packing:
            self.pack()
        diskfull.flush_to_disk(self.written)
        self._flushed = True
        reason = diskfull.incomplete(self.written, self.spec.name, features, self.folder,
                                     recount=recount)
        if reason is None:
            return
        if diskfull.nearly_full(self.folder):
            raise diskfull.error(self.final)
        raise ExportError(f"GDAL did not write all of {self.final.name}: {reason}; nothing "
                          "was published, try the export again.")

    def publish(self) -> int:
        """Move the finished file into place; returns its size. Raises
        :class:`InvalidExport` if a file appeared at the target meanwhile (without
        overwrite), :class:`ExportError` when the system refuses."""
        try:
            if self.shapefile and not self._packing:
                self.pack()
            if not self._flushed:
                diskfull.flush_to_disk(self.written)
                self._flushed = True
            _rename_into_place(self.written, self.final, self.overwrite)
            self.bytes = self.final.stat().st_size
        except OSError as exc:
            raise failure(self.final, exc) from None
        return self.bytes

    def discard(self) -> None:
        """Remove every file of this output (nothing once published); the output may be
        written anew afterwards."""
        _remove_prefixed(self.folder, self.prefix)


@contextlib.contextmanager
def atomic_output(final: Path, spec: FormatSpec, overwrite: bool = False, *,
                  layer: Optional[str] = None,
                  config: Optional[Config] = None) -> Iterator[TempOutput]:
    """Write ``final`` atomically: yields a :class:`TempOutput` whose ``path`` the caller
    writes; when the block ends normally the file is published (``output.bytes`` is
    then its size), when it raises everything written is removed.

    Before yielding, the target is checked (:func:`check_target`; with ``config``, the
    agent's own files are refused too): :class:`InvalidExport`. An OSError or SQLite
    error in the block, and any failure to publish, become one :class:`ExportError`
    sentence (the disk is full when it is).
    """
    final = Path(final)
    if config is not None:
        protected.refuse_own_file(config, final)
    check_target(final, overwrite)
    output = TempOutput(final, spec, overwrite, layer)
    try:
        try:
            output.start()
            yield output
        except (OSError, sqlite3.Error) as exc:
            raise failure(final, exc) from None
        output.publish()
    finally:
        output.discard()


def _rename_into_place(temp: Path, final: Path, overwrite: bool) -> None:
    """Move the finished temp file into place, atomically; never clobber unless asked."""
    if overwrite:
        os.replace(temp, final)
        return
    try:
        os.link(temp, final)  # fails if ``final`` appeared meanwhile, unlike a rename
    except FileExistsError:
        raise _exists(final) from None
    except OSError:  # no hard links on this file system (FAT, some shares)
        if final.exists():
            raise _exists(final) from None
        os.replace(temp, final)
        return
    temp.unlink()


def zip_shapefile(folder: Path, packed: Path) -> None:
    """One .zip with the shapefile's parts, in the order readers expect."""
    import zipfile

    order = {".shp": 0, ".shx": 1, ".dbf": 2, ".prj": 3, ".cpg": 4}
    parts = sorted(folder.iterdir(), key=lambda p: (order.get(p.suffix.lower(), 9), p.name))
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as zf:
        for part in parts:
            zf.write(part, part.name)


def remove_stale_temp_files(out: str | os.PathLike) -> int:
    """Remove temp files a killed export left next to ``out``; returns how many."""
    out = Path(out)
    return _remove_prefixed(out.parent, f".{out.name}{TEMP_MARK}")


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.iterdir())
        return path.stat().st_size
    except OSError:
        return 0


def _prefixed(folder: Path, prefix: str) -> list[Path]:
    try:
        return [e for e in folder.iterdir() if e.name.startswith(prefix)]
    except OSError:
        return []


def _remove_prefixed(folder: Path, prefix: str) -> int:
    """Remove the files and folders in ``folder`` whose names start with ``prefix``."""
    removed = 0
    for entry in _prefixed(folder, prefix):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        removed += 1
    return removed
