"""Audio: the differentiable mel front-end, the Griffin-Lim vocoder, audio files, and the librosa
analysis the evaluators use.

* :mod:`.mel` -- waveform <-> normalised log-mel ``[B, n_mels, frames]``, checks, dB/power conversions;
* :mod:`.vocoder` -- :class:`GriffinLimVocoder` (mel -> waveform) and the spectral convergence;
* :mod:`.files` -- :func:`load_audio`, :func:`save_audio`, :func:`rms_db`;
* :mod:`.analysis` -- the same features computed by librosa on decoded audio (evaluation only);
* :mod:`.pitch` -- a pretrained pitch judge (PESTO) for melody accuracy on audio (evaluation only);
* :mod:`.neural` -- a trained vocoder (:class:`NeuralVocoder`, :func:`load_vocoder`): mel -> STFT ->
  inverse STFT, the same interface and limiter as Griffin-Lim.
"""

from .analysis import MIDDLE_C_HZ, librosa_chroma, librosa_mel_power, librosa_power, reanalyse_mel
from .files import load_audio, rms_db, save_audio
from .mel import (
    AudioError,
    as_waveform,
    check_mel,
    db_to_norm,
    mel_filterbank,
    mel_power,
    norm_to_db,
    norm_to_power,
    power_to_db,
    resample,
    stft_magnitude,
    wave_to_mel,
)
from .neural import NeuralVocoder, load_vocoder, preset_vocoder, vocoder_choice
from .pitch import PitchTrack, judge_info, judge_pitch, melody_accuracy, note_scores, pitch_scores
from .vocoder import GriffinLimVocoder, clipped_fraction, spectral_convergence

__all__ = ["MIDDLE_C_HZ", "AudioError", "GriffinLimVocoder", "as_waveform", "clipped_fraction", "check_mel",
           "db_to_norm",
           "librosa_chroma", "librosa_mel_power", "librosa_power", "load_audio", "mel_filterbank",
           "mel_power", "norm_to_db", "norm_to_power", "power_to_db", "reanalyse_mel", "resample",
           "rms_db", "save_audio", "spectral_convergence", "stft_magnitude", "wave_to_mel",
           "PitchTrack", "judge_info", "judge_pitch", "melody_accuracy", "note_scores", "pitch_scores",
           "NeuralVocoder", "load_vocoder", "preset_vocoder", "vocoder_choice"]
