"""chronoclip.io.audio: waveform loading (soundfile and PyAV paths), resampling, log-mel."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from transformers.audio_utils import mel_filter_bank

from chronoclip.errors import ConfigError, MediaError
from chronoclip.io.audio import MelConfig, load_audio, log_mel, mel_filters, resample
from chronoclip.io.writers import write_video, write_wav

SR = 16000
QUANT = 1e-4  # 16-bit PCM round trip: the writer truncates x * 32767, decoders divide by 32768


def make_signal(seconds: float = 3.0, rate: int = SR) -> np.ndarray:
    """``float32 [S]``: a 1 kHz burst at 0.5 s, a click at 1.25 s, quiet noise elsewhere."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    wave = 0.01 * np.random.default_rng(0).standard_normal(n)
    burst = (t >= 0.5) & (t < 0.6)
    wave[burst] += 0.8 * np.sin(2 * np.pi * 1000 * (t[burst] - 0.5))
    wave[round(1.25 * rate)] = 0.9
    return wave.astype(np.float32)


def click_position(wave: np.ndarray) -> int:
    """Index of the largest sample after the burst (the click)."""
    return int(np.argmax(np.abs(wave[round(0.7 * SR):]))) + round(0.7 * SR)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    wave = make_signal()
    frames = np.zeros((75, 16, 16, 3), dtype=np.uint8)  # 3 s at 25 fps
    paths = {name: folder / name for name in
             ("mono.wav", "stereo.wav", "44k.wav", "mono.flac", "aac.mp4", "pcm.mov", "silent.mp4")}
    write_wav(paths["mono.wav"], wave, SR)
    write_wav(paths["stereo.wav"], np.stack([wave, np.zeros_like(wave) + 0.25], axis=1), SR)
    t44 = np.arange(3 * 44100) / 44100
    write_wav(paths["44k.wav"], 0.5 * np.sin(2 * np.pi * 440 * t44), 44100)
    soundfile.write(str(paths["mono.flac"]), wave, SR, subtype="PCM_16")
    write_video(paths["aac.mp4"], frames, 25, audio=wave, sample_rate=SR, audio_codec="aac")
    write_video(paths["pcm.mov"], frames, 25, audio=wave, sample_rate=SR, audio_codec="pcm_s16le")
    write_video(paths["silent.mp4"], frames, 25)
    return paths


# --- loading --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mono.wav", "mono.flac", "pcm.mov"])
def test_lossless_files_round_trip(files: dict[str, Path], name: str) -> None:
    wave = load_audio(files[name])
    assert wave.dtype == np.float32 and wave.shape == (3 * SR,)
    np.testing.assert_allclose(wave, make_signal(), atol=QUANT)


@pytest.mark.parametrize("name", ["mono.wav", "mono.flac", "pcm.mov"])
def test_start_and_duration_cut_the_same_samples(files: dict[str, Path], name: str) -> None:
    whole = load_audio(files[name])
    part = load_audio(files[name], start=1.0, duration=0.75)
    assert part.shape == (12000,)
    np.testing.assert_array_equal(part, whole[SR:SR + 12000])


def test_aac_window_matches_the_whole_file_decode(files: dict[str, Path]) -> None:
    """A window decoded after a seek lines up with the whole-file decode sample for sample; values
    differ a little only where the encoder used noise substitution (the decoder's noise generator
    state depends on where decoding started)."""
    whole = load_audio(files["aac.mp4"])
    part = load_audio(files["aac.mp4"], start=1.0, duration=0.75)
    assert part.shape == (12000,)
    assert click_position(np.concatenate([np.zeros(SR, np.float32), part])) == round(1.25 * SR)
    reference = whole[SR:SR + 12000]
    click_frame = slice(19456 - SR, 20480 - SR)  # the AAC frame holding the click (noise-substituted)
    np.testing.assert_allclose(np.delete(part, np.r_[click_frame]), np.delete(reference, np.r_[click_frame]),
                               atol=1e-5)


def test_aac_in_mp4_has_no_priming_offset(files: dict[str, Path]) -> None:
    """FFmpeg drops the AAC encoder's 1024 priming samples (mp4 edit list): no shift, same length."""
    original, decoded = make_signal(), load_audio(files["aac.mp4"])
    assert decoded.shape == original.shape  # trailing encoder padding trimmed to the stream length
    assert click_position(decoded) == click_position(original) == round(1.25 * SR)
    lags = np.arange(-50, 51)
    corr = [np.dot(original[100:-100], np.roll(decoded, -lag)[100:-100]) for lag in lags]
    assert lags[int(np.argmax(corr))] == 0
    assert np.corrcoef(original, decoded)[0, 1] > 0.95
    burst = slice(round(0.5 * SR), round(0.6 * SR))
    assert np.corrcoef(original[burst], decoded[burst])[0, 1] > 0.99


def test_channels_are_averaged(files: dict[str, Path]) -> None:
    np.testing.assert_allclose(load_audio(files["stereo.wav"]), (make_signal() + 0.25) / 2, atol=QUANT)


def test_short_file_is_zero_padded_to_the_exact_length(files: dict[str, Path]) -> None:
    for name in ("mono.wav", "aac.mp4"):
        wave = load_audio(files[name], start=2.5, duration=2.0)
        assert wave.shape == (2 * SR,)
        assert np.all(wave[SR // 2 + 64:] == 0.0)
        assert np.abs(wave[: SR // 2 - 64]).max() > 0.001


def test_start_past_the_end_is_a_media_error(files: dict[str, Path]) -> None:
    for name in ("mono.wav", "aac.mp4"):
        with pytest.raises(MediaError, match="past the end") as err:
            load_audio(files[name], start=3.5, duration=1.0)
        assert str(files[name]) in str(err.value)


def test_resampling_44k1_to_16k_is_exact_in_length_and_tone(files: dict[str, Path]) -> None:
    wave = load_audio(files["44k.wav"])
    assert wave.shape == (3 * SR,)
    ideal = 0.5 * np.sin(2 * np.pi * 440 * np.arange(3 * SR) / SR)
    assert np.abs(wave - ideal)[64:-64].max() < 1e-3
    window = load_audio(files["44k.wav"], start=1.0, duration=0.5)  # context makes edges match
    np.testing.assert_allclose(window, wave[SR:SR + SR // 2], atol=1e-5)


def test_resample_keeps_timing() -> None:
    click = np.zeros(48000, dtype=np.float32)
    click[24000] = 1.0  # 0.5 s at 48 kHz
    out = resample(click, 48000, SR)
    assert out.shape == (SR,) and int(np.argmax(out)) == 8000
    assert np.array_equal(resample(click, 48000, 48000), click)


def test_audio_from_mp4_can_be_resampled(files: dict[str, Path]) -> None:
    wave = load_audio(files["pcm.mov"], sample_rate=8000)
    assert wave.shape == (3 * 8000,)
    assert abs(click_position(np.repeat(wave, 2)) - round(1.25 * SR)) <= 2


# --- errors ---------------------------------------------------------------------------------------


def test_video_without_audio_is_a_media_error(files: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="no audio stream") as err:
        load_audio(files["silent.mp4"])
    assert str(files["silent.mp4"]) in str(err.value)


@pytest.mark.parametrize("suffix", [".wav", ".mp4"])
def test_missing_empty_and_corrupt_files_are_media_errors(tmp_path: Path, suffix: str) -> None:
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    corrupt = tmp_path / f"corrupt{suffix}"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(200)))
    for path, phrase in ((tmp_path / f"missing{suffix}", "not found"), (empty, "empty"),
                         (corrupt, "cannot")):
        with pytest.raises(MediaError, match=phrase) as err:
            load_audio(path, duration=1.0)
        assert str(path) in str(err.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sample_rate": 0}, "sample_rate"), ({"start": -1.0}, "start"), ({"duration": 0.0}, "duration")])
def test_bad_arguments_are_value_errors(files: dict[str, Path], kwargs: dict[str, float],
                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_audio(files["mono.wav"], **kwargs)  # type: ignore[arg-type]


# --- log-mel --------------------------------------------------------------------------------------


def reference_log_mel(wave: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Direct float64 computation: reflect-pad, frame, periodic Hann, explicit DFT matrix, same filters."""
    half = cfg.n_fft // 2
    padded = np.pad(wave.astype(np.float64), half, mode="reflect")
    count = 1 + (len(padded) - cfg.n_fft) // cfg.hop_length
    frames = np.stack([padded[i * cfg.hop_length:i * cfg.hop_length + cfg.n_fft] for i in range(count)], 1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.n_fft) / cfg.n_fft)
    k, n = np.arange(half + 1)[:, None], np.arange(cfg.n_fft)[None, :]
    dft = np.exp(-2j * np.pi * k * n / cfg.n_fft)
    power = np.abs(dft @ (frames * window[:, None])) ** 2
    filters = mel_filter_bank(num_frequency_bins=half + 1, num_mel_filters=cfg.n_mels,
                              min_frequency=cfg.f_min, max_frequency=cfg.max_frequency,
                              sampling_rate=cfg.sample_rate, norm="slaney", mel_scale="slaney")
    return np.log(filters.T @ power + cfg.eps)


def test_log_mel_shape_for_two_seconds() -> None:
    out = log_mel(torch.randn(2 * SR))
    assert out.shape == (80, 201) and out.dtype == torch.float32
    assert MelConfig().num_frames(2 * SR) == 201


def test_log_mel_matches_a_direct_dft_reference() -> None:
    """float64: max |difference| of log values < 1e-9; float32 (the normal case): < 2e-4 (seen: 5e-5)."""
    cfg = MelConfig()
    wave = make_signal(2.0)
    expected = reference_log_mel(wave, cfg)
    got64 = log_mel(torch.from_numpy(wave.astype(np.float64)), cfg).numpy()
    np.testing.assert_allclose(got64, expected, rtol=0, atol=1e-9)
    got32 = log_mel(torch.from_numpy(wave), cfg).numpy()
    assert np.abs(got32 - expected).max() < 2e-4


def test_log_mel_is_batched() -> None:
    waves = torch.randn(2, 3, SR)
    out = log_mel(waves)
    assert out.shape == (2, 3, 80, 101)
    torch.testing.assert_close(out[1, 2], log_mel(waves[1, 2]), rtol=0, atol=1e-4)


def test_silence_gives_log_eps_and_normalisation_is_affine() -> None:
    cfg = MelConfig()
    silent = log_mel(torch.zeros(2 * SR), cfg)
    torch.testing.assert_close(silent, torch.full((80, 201), math.log(cfg.eps)))
    norm = MelConfig(normalize=True)
    wave = torch.from_numpy(make_signal(2.0))
    torch.testing.assert_close(log_mel(wave, norm), (log_mel(wave, cfg) - norm.mean) / norm.std)


def test_mel_filters_are_cached_and_slaney_shaped() -> None:
    first = mel_filters(SR, 1024, 80, 0.0, 8000.0)
    assert first is mel_filters(SR, 1024, 80, 0.0, 8000.0)
    assert first.shape == (513, 80) and first.dtype == torch.float64 and bool((first >= 0).all())
    # slaney scale: linear below 1 kHz, so the first filters' peaks are evenly spaced
    peaks = first.argmax(dim=0)[:10].double()
    assert float(peaks.diff().std()) < 0.6


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"f_max": 9000.0}, "f_max"), ({"n_mels": 0}, "n_mels"), ({"pad_mode": "mirror"}, "pad_mode"),
    ({"eps": 0.0}, "eps")])
def test_mel_config_is_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MelConfig(**kwargs)  # type: ignore[arg-type]


def test_log_mel_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="float"):
        log_mel(torch.zeros(SR, dtype=torch.int16))
    with pytest.raises(ValueError, match="too short"):
        log_mel(torch.zeros(100))


def test_writers_warn_when_they_clip_a_loud_mix(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A stray peak past ±1 is clipped quietly; a mix whose noise clips is named, with its share."""
    peaky = make_signal()
    peaky[100] = 1.5
    loud = np.random.default_rng(1).normal(0, 0.6, SR).astype(np.float32)  # ~10 % of samples past ±1
    with caplog.at_level("WARNING", logger="chronoclip.io.writers"):
        write_wav(tmp_path / "peaky.wav", peaky, SR)
        assert not caplog.records
        write_wav(tmp_path / "loud.wav", loud, SR)
        write_video(tmp_path / "loud.mp4", np.zeros((4, 16, 16, 3), np.uint8), 8.0, audio=loud, sample_rate=SR,
                    audio_codec="pcm_s16le")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "loud.wav" in messages[0] and "loud.mp4" in messages[1]
    assert all("outside [-1, 1]" in m for m in messages)
    assert np.abs(soundfile.read(tmp_path / "loud.wav")[0]).max() <= 1.0
