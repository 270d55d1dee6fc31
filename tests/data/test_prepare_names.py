"""`vsslrt.data.prepare.names`: the spellings of VGGSound file names, and which file provides a clip."""

from __future__ import annotations

from pathlib import Path

from vsslrt.data.prepare.names import ClipName, match_videos, parse_clip_name, scan_videos


def test_spellings():
    assert parse_clip_name("-0A4hc6jv9E_000030") == ClipName("-0A4hc6jv9E", 30.0)
    assert parse_clip_name("-0A4hc6jv9E_30") == ClipName("-0A4hc6jv9E", 30.0)
    assert parse_clip_name("-0A4hc6jv9E_000030_000040") == ClipName("-0A4hc6jv9E", 30.0, 40.0)
    assert parse_clip_name("-0A4hc6jv9E_30.000_40.000") == ClipName("-0A4hc6jv9E", 30.0, 40.0)
    assert parse_clip_name("__2MwJ2uHu0_000004") == ClipName("__2MwJ2uHu0", 4.0)  # ids hold underscores
    assert parse_clip_name("-0A4hc6jv9E") == ClipName("-0A4hc6jv9E", None)
    assert parse_clip_name("-0A4hc6jv9E").key == ("-0A4hc6jv9E", None)
    for bad in ("short_000030", "-0A4hc6jv9E_", "-0A4hc6jv9E_3x", "-0A4hc6jv9E_1_2_3", "clip"):
        assert parse_clip_name(bad) is None, bad


def test_matching_prefers_the_clip_file_and_lists_duplicates(tmp_path):
    files = ["a/-0A4hc6jv9E.mp4", "-0A4hc6jv9E_30.mkv", "x/y/-0A4hc6jv9E_000030.mp4", "BBBBBBBBBBB.webm",
             "odd name.mp4", "notes.txt", ".hidden/CCCCCCCCCCC_000000.mp4"]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = scan_videos(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "-0A4hc6jv9E_30.mkv", "BBBBBBBBBBB.webm", "a/-0A4hc6jv9E.mp4", "odd name.mp4", "x/y/-0A4hc6jv9E_000030.mp4"]
    got = match_videos(["-0A4hc6jv9E_000030", "-0A4hc6jv9E_000050", "BBBBBBBBBBB_000010", "odd name",
                        "CCCCCCCCCCC_000000"], found)
    first = got["-0A4hc6jv9E_000030"]
    assert first.path == tmp_path / "-0A4hc6jv9E_30.mkv"           # the shortest path of the clip files
    assert first.ignored == (tmp_path / "x/y/-0A4hc6jv9E_000030.mp4",)  # the whole video is no duplicate
    assert got["-0A4hc6jv9E_000050"].path == tmp_path / "a/-0A4hc6jv9E.mp4"  # another clip: the whole video
    assert got["BBBBBBBBBBB_000010"].name == ClipName("BBBBBBBBBBB", None)
    assert got["odd name"].path == tmp_path / "odd name.mp4"        # a literal id
    assert "CCCCCCCCCCC_000000" not in got                           # hidden folders are skipped
    assert isinstance(first.path, Path)
