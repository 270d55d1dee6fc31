"""Audio files that are cut short or are not audio at all: a named DataError, never silent short
audio, and nothing printed by the decoders."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile

from tests.data.conftest import write_wav
from vsslrt.data import audio_io
from vsslrt.data.audio_io import audio_header, read_audio
from vsslrt.errors import DataError


def _cut(path, keep_bytes: int):
    data = path.read_bytes()
    path.write_bytes(data[:keep_bytes])


def _mpeg_lookalike(seed: int = 1) -> bytes:
    """A valid-looking MPEG-1 layer III frame header followed by random bytes (no second frame)."""
    rest = np.random.default_rng(seed).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    return bytes([0xFF, 0xFB, 0x90, 0xC4]) + rest[4:]


@pytest.fixture(params=["soundfile only", "with PyAV"])
def backends(request, monkeypatch):
    """Run a test without PyAV and, where it is installed, with it."""
    if request.param == "soundfile only":
        monkeypatch.setattr(audio_io, "pyav_available", lambda: False)
    else:
        pytest.importorskip("av")
    return request.param


@pytest.mark.parametrize("fmt, subtype, suffix", [("WAV", "PCM_16", "wav"), ("WAV", "FLOAT", "wav"), ("WAV", "PCM_24", "wav"),
                                                   ("WAVEX", "PCM_16", "wav"), ("RF64", "PCM_16", "rf64"), ("AIFF", "PCM_16", "aiff")])
def test_truncated_file_says_how_much_is_missing(tmp_path, backends, fmt, subtype, suffix):
    path = tmp_path / f"clip.{suffix}"
    soundfile.write(str(path), np.zeros(16000), 16000, format=fmt, subtype=subtype)
    whole = read_audio(path)
    assert whole.frames == 16000 and audio_header(path) == (16000, 16000, 1)
    size = path.stat().st_size
    _cut(path, size - (16000 - 960) * {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4}[subtype])  # 0.06 s left
    held = soundfile.info(str(path)).frames  # what libsndfile silently settles for
    assert held == 960
    pattern = rf"clip\.{suffix}: expected a complete audio file, got a truncated one: the header promises 16000 frames \(1\.00 s\), the file holds 960 \(0\.06 s; 15040 missing\)\..*re-download"
    with pytest.raises(DataError, match=pattern):
        read_audio(path)
    with pytest.raises(DataError, match=pattern):
        audio_header(path)


def test_cut_flac_is_an_error_not_a_libsndfile_riddle(tmp_path, backends):
    path = tmp_path / "clip.flac"
    write_wav(tmp_path / "src.wav", 1.0, seed=2)
    soundfile.write(str(path), soundfile.read(str(tmp_path / "src.wav"))[0], 16000, format="FLAC")
    _cut(path, path.stat().st_size * 2 // 3)
    with pytest.raises(DataError, match=r"clip\.flac: expected a complete audio file, got a stream that breaks off .*the header promises 16000 frames"):
        read_audio(path)


def test_complete_files_with_unusual_headers_are_not_flagged(tmp_path):
    write_wav(tmp_path / "a.wav", 0.5, seed=3)
    expected = read_audio(tmp_path / "a.wav").samples
    data = bytearray((tmp_path / "a.wav").read_bytes())
    # A chunk after the samples (metadata written last): the file holds more than the data chunk.
    listed = bytes(data) + b"LIST" + struct.pack("<I", 4) + b"INFO"
    listed = listed[:4] + struct.pack("<I", len(listed) - 8) + listed[8:]
    (tmp_path / "listed.wav").write_bytes(listed)
    np.testing.assert_array_equal(read_audio(tmp_path / "listed.wav").samples, expected)
    # A streaming writer's placeholder size: the length is unknown, not promised.
    offset = bytes(data).index(b"data") + 4
    data[offset : offset + 4] = struct.pack("<I", 0xFFFFFFFF)
    (tmp_path / "stream.wav").write_bytes(bytes(data))
    np.testing.assert_array_equal(read_audio(tmp_path / "stream.wav").samples, expected)
    # Real MPEG audio without an ID3 tag starts with a frame header too, and still decodes.
    soundfile.write(str(tmp_path / "t.mp3"), expected[0], 16000, format="MP3")
    mp3 = (tmp_path / "t.mp3").read_bytes()
    if mp3[:3] == b"ID3":  # strip the tag: the file then starts with the bare frame sync
        size = (mp3[6] << 21) | (mp3[7] << 14) | (mp3[8] << 7) | mp3[9]
        mp3 = mp3[10 + size :]
    assert mp3[0] == 0xFF
    (tmp_path / "bare.mp3").write_bytes(mp3)
    assert read_audio(tmp_path / "bare.mp3").frames == soundfile.info(str(tmp_path / "t.mp3")).frames


def test_random_bytes_give_one_clean_message_and_no_stray_output(tmp_path, capfd, backends):
    path = tmp_path / "noise.wav"
    path.write_bytes(_mpeg_lookalike())
    # Precondition: handed to libsndfile as they are, these bytes make libmpg123 print to stderr.
    with pytest.raises(soundfile.LibsndfileError, match="does not exist"):
        soundfile.info(str(path))
    if not capfd.readouterr().err:
        pytest.skip("this libsndfile does not route the bytes to libmpg123")
    for fn in (read_audio, audio_header):
        with pytest.raises(DataError) as excinfo:
            fn(path)
        message = str(excinfo.value)
        assert message.startswith(f"{path}: expected a readable audio file, got data in no audio format libsndfile")
        assert "(RIFF/WAVE, FLAC, OGG, AIFF, MP3, ...); it starts with ff fb 90 c4" in message
        assert "does not exist" not in message and "re-download" in message and "\n" not in message
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_text_saved_as_audio_is_shown_as_text(tmp_path, capfd, backends):
    (tmp_path / "page.wav").write_bytes(b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n")
    with pytest.raises(DataError, match=r"page\.wav: expected a readable audio file, got data in no audio format.*it starts with '<!DOCTYPE html>'\. "):
        read_audio(tmp_path / "page.wav")
    assert capfd.readouterr().err == ""


def test_empty_and_headerless_files(tmp_path):
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(DataError, match=r"zero\.wav: expected an audio file, got an empty \(0-byte\) file"):
        read_audio(tmp_path / "zero.wav")
    with pytest.raises(DataError, match=r"zero\.wav: expected an audio file, got an empty \(0-byte\) file"):
        audio_header(tmp_path / "zero.wav")
    write_wav(tmp_path / "a.wav", 0.2, seed=4)
    _cut(tmp_path / "a.wav", 30)  # inside the header
    with pytest.raises(DataError, match=r"a\.wav: expected a readable audio file"):
        read_audio(tmp_path / "a.wav")


def test_mpeg_frame_header_rule_matches_libsndfile():
    # The bits libsndfile tests before calling libmpg123: sync, version != 01, layer != 00,
    # bitrate index != 15, sample-rate index != 3.
    assert audio_io._mpeg_header(bytes([0xFF, 0xFB, 0x90, 0xC4]))[3] == 417  # 128 kbit/s at 44.1 kHz
    assert audio_io._mpeg_header(bytes([0xFF, 0xF3, 0x88, 0xC4]))[3] == 288  # MPEG-2 layer III, 64 kbit/s at 16 kHz
    for bad in ([0xFF, 0xF1, 0x50, 0x80], [0xFF, 0xEB, 0x90, 0xC4], [0xFF, 0xFB, 0xF0, 0xC4], [0xFF, 0xFB, 0x9C, 0xC4], [0xFE, 0xFB, 0x90, 0xC4]):
        assert audio_io._mpeg_header(bytes(bad)) is None, bad  # ADTS AAC, reserved version, bad bitrate, bad rate, no sync
