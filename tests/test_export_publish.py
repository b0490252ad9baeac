"""``export.publish.atomic_output``: a writer of its own (the plugin writes project layers
through QGIS) gets the engine's atomic publication: the file appears complete at its
target or not at all, a file that appeared meanwhile is kept, a full disk is said in one
sentence, and the agent's own files are refused. The writer here writes plain bytes: what
is under test is what happens around the writing."""

from __future__ import annotations

import errno
import zipfile
from pathlib import Path

import pytest
from terrafusion_agent import config as config_mod
from terrafusion_agent.errors import ExportError, InvalidExport
from terrafusion_agent.export import FORMATS
from terrafusion_agent.export.publish import atomic_output, remove_stale_temp_files

GEOJSON = FORMATS["geojson"]
#: a GeoJSON file as GDAL writes it, with two features
TWO_FEATURES = (b'{\n"type": "FeatureCollection",\n"features": [\n'
                b'{ "type": "Feature", "properties": { "id": 1 }, "geometry": null },\n'
                b'{ "type": "Feature", "properties": { "id": 2 }, "geometry": null }\n'
                b"]\n}\n")


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_written_file_is_published_and_nothing_else_is_left(tmp_path):
    target = tmp_path / "wells.geojson"
    with atomic_output(target, GEOJSON) as output:
        assert output.path.parent == tmp_path and output.path.name.startswith(".wells.")
        output.path.write_bytes(TWO_FEATURES)
        output.verify(features=2)
        assert listing(tmp_path) == [output.path.name], "hidden until the block ends"
    assert target.read_bytes() == TWO_FEATURES
    assert output.bytes == len(TWO_FEATURES)
    assert listing(tmp_path) == ["wells.geojson"]


def test_a_failing_writer_leaves_nothing_and_its_error_stays_its_own(tmp_path):
    target = tmp_path / "wells.geojson"
    with pytest.raises(RuntimeError, match="the layer went away"):
        with atomic_output(target, GEOJSON) as output:
            output.path.write_bytes(TWO_FEATURES[:40])
            Path(f"{output.path}-journal").write_bytes(b"a side file of the writer")
            raise RuntimeError("the layer went away")
    assert listing(tmp_path) == []


def test_an_existing_file_is_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "wells.geojson"
    target.write_text("keep me")
    entered = []
    with pytest.raises(InvalidExport, match="already exists"):
        with atomic_output(target, GEOJSON):
            entered.append(True)
    assert not entered
    assert target.read_text() == "keep me" and listing(tmp_path) == ["wells.geojson"]


def test_a_file_that_appears_at_the_target_meanwhile_is_kept(tmp_path):
    target = tmp_path / "wells.geojson"
    with pytest.raises(InvalidExport) as caught:
        with atomic_output(target, GEOJSON) as output:
            output.path.write_bytes(TWO_FEATURES)
            target.write_text("saved by a colleague")
    assert str(target) in str(caught.value) and "--overwrite" in str(caught.value)
    assert target.read_text() == "saved by a colleague"
    assert listing(tmp_path) == ["wells.geojson"]


def test_overwrite_replaces_the_target(tmp_path):
    target = tmp_path / "wells.geojson"
    target.write_text("last week's")
    with atomic_output(target, GEOJSON, overwrite=True) as output:
        output.path.write_bytes(TWO_FEATURES)
    assert target.read_bytes() == TWO_FEATURES and listing(tmp_path) == ["wells.geojson"]


def test_a_shapefile_is_published_as_one_zip_of_its_parts(tmp_path):
    target = tmp_path / "wells.zip"
    with atomic_output(target, FORMATS["shp"], layer="wells") as output:
        assert output.path.name == "wells.shp"
        for suffix in (".dbf", ".cpg", ".shx", ".prj", ".shp"):
            output.path.with_suffix(suffix).write_bytes(suffix.encode())
    with zipfile.ZipFile(target) as zf:
        assert zf.namelist() == ["wells.shp", "wells.shx", "wells.dbf", "wells.prj",
                                 "wells.cpg"], "in the order readers expect"
    assert listing(tmp_path) == ["wells.zip"]


def test_a_text_file_cut_short_is_an_error_never_an_export(tmp_path):
    target = tmp_path / "wells.geojson"
    with pytest.raises(ExportError, match="holds 1 of 2 features"):
        with atomic_output(target, GEOJSON) as output:
            one = TWO_FEATURES.replace(
                b'{ "type": "Feature", "properties": { "id": 2 }, "geometry": null }\n', b"")
            output.path.write_bytes(one)
            output.verify(features=2)
    assert listing(tmp_path) == []


def test_a_full_disk_is_said_in_one_sentence_and_leaves_nothing(small_disk):
    disk = small_disk(64 * 1024)
    target = disk / "wells.geojson"
    with pytest.raises(ExportError) as caught:
        with atomic_output(target, GEOJSON) as output:
            with open(output.path, "wb") as f:
                while True:  # the writer fills the disk: ENOSPC at the write
                    f.write(b"x" * 4096)
                    f.flush()
    message = str(caught.value)
    assert message.startswith(f"The disk is full in {disk}: wells.geojson was not written")
    assert "\n" not in message
    assert listing(disk) == []


def test_an_operating_system_error_is_one_sentence_naming_the_file(tmp_path):
    target = tmp_path / "wells.geojson"
    with pytest.raises(ExportError) as caught:
        with atomic_output(target, GEOJSON):
            raise OSError(errno.EACCES, "Permission denied")
    assert str(caught.value) == (f"wells.geojson could not be written in {tmp_path}: "
                                 "Permission denied.")
    assert listing(tmp_path) == []


def test_the_agents_own_files_are_refused_with_its_configuration(tmp_path):
    local = tmp_path / "local.sqlite"
    local.write_bytes(b"the local copy")
    (tmp_path / "agent.toml").write_text(f'[local]\npath = "{local}"\n')
    config = config_mod.load(tmp_path / "agent.toml", environ={})
    entered = []
    with pytest.raises(InvalidExport, match="the agent's local copy"):
        with atomic_output(tmp_path / "LOCAL.sqlite", GEOJSON, overwrite=True,
                           config=config):
            entered.append(True)
    assert not entered and local.read_bytes() == b"the local copy"


def test_stale_temp_files_of_a_killed_writer_are_found_by_the_target(tmp_path):
    target = tmp_path / "wells.geojson"
    (tmp_path / ".wells.geojson.tf-0badf00d.geojson").write_text("{half")
    (tmp_path / ".wells.geojson.tf-0badf00d.d").mkdir()
    (tmp_path / ".other.geojson.tf-0badf00d.geojson").write_text("{another export's")
    assert remove_stale_temp_files(target) == 2
    assert listing(tmp_path) == [".other.geojson.tf-0badf00d.geojson"]
