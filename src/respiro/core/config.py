"""params.yaml, read once and checked: the pipeline's single source of configuration.

Each group of params.yaml becomes a frozen dataclass. Every value is validated when the file
is loaded, so a typo or an out-of-range value stops the stage before any work, with an error
that names the key and what is allowed (`ParamsError: model.depth must be one of 18, 34,
got 50`). Unknown keys are errors too: a misspelt key silently ignored would run the
experiment the user did not ask for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from respiro.data.icbhi import CLASS_NAMES
from respiro.data.synthetic.corpus import SyntheticConfig
from respiro.core.errors import ParamsError



# --- small checkers: each returns the value or raises ParamsError naming the key -----------


def _one_of(key: str, value: Any, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise ParamsError(f"{key} must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return value


def _integer(key: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamsError(f"{key} must be an integer; got {value!r}")
    if low is not None and value < low:
        raise ParamsError(f"{key} must be >= {low}; got {value}")
    if high is not None and value > high:
        raise ParamsError(f"{key} must be <= {high}; got {value}")
    return value


def _number(key: str, value: Any, low: float | None = None, high: float | None = None, *, open_low: bool = False, open_high: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamsError(f"{key} must be a number; got {value!r}")
    value = float(value)
    if low is not None and (value <= low if open_low else value < low):
        raise ParamsError(f"{key} must be {'>' if open_low else '>='} {low}; got {value}")
    if high is not None and (value >= high if open_high else value > high):
        raise ParamsError(f"{key} must be {'<' if open_high else '<='} {high}; got {value}")
    return value


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParamsError(f"{key} must be true or false; got {value!r}")
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ParamsError(f"{key} must be a non-empty string; got {value!r}")
    return value


def _optional(check, key: str, value: Any, *args, **kwargs):
    return None if value is None else check(key, value, *args, **kwargs)


# --- the groups ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataParams:
    source: str
    local_path: str
    url: str
    split_url: str
    size: int | None
    sha256: str | None
    download_dir: str
    erratum_file: str | None

    SOURCES = ("synthetic", "icbhi", "local")

    def __post_init__(self) -> None:
        _one_of("data.source", self.source, self.SOURCES)
        _string("data.local_path", self.local_path)
        _string("data.url", self.url)
        _string("data.split_url", self.split_url)
        _optional(_integer, "data.size", self.size, 1)
        if self.sha256 is not None and not (
            isinstance(self.sha256, str) and len(self.sha256) == 64 and all(c in "0123456789abcdefABCDEF" for c in self.sha256)
        ):
            raise ParamsError(f"data.sha256 must be null or 64 hex digits; got {self.sha256!r}")
        _string("data.download_dir", self.download_dir)
        _optional(_string, "data.erratum_file", self.erratum_file)


@dataclass(frozen=True)
class SyntheticParams:
    seed: int
    patients: int
    recordings: int
    recording_seconds: float

    def __post_init__(self) -> None:
        # The generator owns these ranges, and its messages already name the keys.
        try:
            SyntheticConfig(**dataclasses.asdict(self))
        except ValueError as err:
            raise ParamsError(str(err)) from None


@dataclass(frozen=True)
class ResampleParams:
    rate: int
    # A checkpoint saved before this key existed was resampled with torchaudio.
    method: str = "torchaudio"

    METHODS = ("soxr", "torchaudio")

    def __post_init__(self) -> None:
        _integer("resample.rate", self.rate, 1000, 192000)
        _one_of("resample.method", self.method, self.METHODS)


@dataclass(frozen=True)
class NormalizeParams:
    method: str
    target_dbfs: float

    METHODS = ("rms", "peak", "none")

    def __post_init__(self) -> None:
        _one_of("normalize.method", self.method, self.METHODS)
        _number("normalize.target_dbfs", self.target_dbfs, -100.0, 0.0)


@dataclass(frozen=True)
class SegmentParams:
    duration: float
    pad: str

    PADS = ("repeat", "zero")

    def __post_init__(self) -> None:
        _number("segment.duration", self.duration, 0.0, 60.0, open_low=True)
        _one_of("segment.pad", self.pad, self.PADS)


@dataclass(frozen=True)
class StftParams:
    n_fft: int
    hop_length: int
    window: str
    scale: str
    top_db: float

    WINDOWS = ("hann", "hamming")
    SCALES = ("log", "db", "linear")

    def __post_init__(self) -> None:
        _integer("stft.n_fft", self.n_fft, 16, 8192)
        _integer("stft.hop_length", self.hop_length, 1, self.n_fft)
        _one_of("stft.window", self.window, self.WINDOWS)
        _one_of("stft.scale", self.scale, self.SCALES)
        _number("stft.top_db", self.top_db, 0.0, open_low=True)



@dataclass(frozen=True)
class AudioParams:
    workers: int

    def __post_init__(self) -> None:
        _integer("audio.workers", self.workers, 0)

@dataclass(frozen=True)
class SplitParams:
    method: str
    test_fraction: float
    folds_file: str | None
    n_folds: int
    fold: int
    seed: int

    METHODS = ("official", "patient", "folds", "random")

    def __post_init__(self) -> None:
        _one_of("split.method", self.method, self.METHODS)
        _number("split.test_fraction", self.test_fraction, 0.0, 1.0, open_low=True, open_high=True)
        _optional(_string, "split.folds_file", self.folds_file)
        _integer("split.n_folds", self.n_folds, 2)
        _integer("split.fold", self.fold, 0, self.n_folds - 1)
        _integer("split.seed", self.seed, 0)


@dataclass(frozen=True)
class ModelParams:
    depth: int
    cbam: bool
    cbam_reduction: int

    DEPTHS = (18, 34)

    def __post_init__(self) -> None:
        _one_of("model.depth", self.depth, self.DEPTHS)
        _boolean("model.cbam", self.cbam)
        _integer("model.cbam_reduction", self.cbam_reduction, 1)


@dataclass(frozen=True)
class LossParams:
    name: str
    gamma: float
    alpha: float | tuple[float, ...] | None

    NAMES = ("focal", "ce")

    def __post_init__(self) -> None:
        _one_of("loss.name", self.name, self.NAMES)
        _number("loss.gamma", self.gamma, 0.0)
        alpha = self.alpha
        if isinstance(alpha, list):
            alpha = tuple(alpha)
            object.__setattr__(self, "alpha", alpha)
        if isinstance(alpha, tuple):
            if len(alpha) != len(CLASS_NAMES):
                raise ParamsError(
                    f"loss.alpha as a list needs {len(CLASS_NAMES)} weights in class order "
                    f"[{', '.join(CLASS_NAMES)}]; got {len(alpha)}"
                )
            for i, weight in enumerate(alpha):
                _number(f"loss.alpha[{i}]", weight, 0.0)
            if sum(alpha) <= 0:
                raise ParamsError("loss.alpha weights must not all be 0")
        elif alpha is not None:
            _number("loss.alpha", alpha, 0.0, 1.0, open_low=True)


@dataclass(frozen=True)
class TrainParams:
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    schedule: str
    weight_decay: float
    val_fraction: float
    time_mask: int
    freq_mask: int
    seed: int
    device: str
    precision: str
    processes: int
    workers: int

    OPTIMIZERS = ("adam", "sgd")
    SCHEDULES = ("cosine", "step", "constant")
    DEVICES = ("auto", "cpu", "cuda")
    PRECISIONS = ("auto", "fp32", "bf16")

    def __post_init__(self) -> None:
        _integer("train.epochs", self.epochs, 1)
        _integer("train.batch_size", self.batch_size, 1)
        _one_of("train.optimizer", self.optimizer, self.OPTIMIZERS)
        _number("train.lr", self.lr, 0.0, open_low=True)
        _one_of("train.schedule", self.schedule, self.SCHEDULES)
        _number("train.weight_decay", self.weight_decay, 0.0)
        _number("train.val_fraction", self.val_fraction, 0.0, 1.0, open_low=True, open_high=True)
        _integer("train.time_mask", self.time_mask, 0)
        _integer("train.freq_mask", self.freq_mask, 0)
        _integer("train.seed", self.seed, 0)
        _one_of("train.device", self.device, self.DEVICES)
        _one_of("train.precision", self.precision, self.PRECISIONS)
        _integer("train.processes", self.processes, 1)
        _integer("train.workers", self.workers, 0)


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int

    def __post_init__(self) -> None:
        _integer("evaluate.batch_size", self.batch_size, 1)


@dataclass(frozen=True)
class Table3Params:
    seeds: tuple[int, ...]
    bootstrap: int
    bootstrap_seed: int

    def __post_init__(self) -> None:
        if not isinstance(self.seeds, (list, tuple)) or not self.seeds:
            raise ParamsError(f"table3.seeds must be a non-empty list of integers; got {self.seeds!r}")
        for i, seed in enumerate(self.seeds):
            _integer(f"table3.seeds[{i}]", seed, 0)
        if len(set(self.seeds)) != len(self.seeds):
            raise ParamsError(f"table3.seeds must be distinct; got {list(self.seeds)}")
        object.__setattr__(self, "seeds", tuple(self.seeds))
        _integer("table3.bootstrap", self.bootstrap, 100)
        _integer("table3.bootstrap_seed", self.bootstrap_seed, 0)


@dataclass(frozen=True)
class Params:
    data: DataParams
    synthetic: SyntheticParams
    resample: ResampleParams
    normalize: NormalizeParams
    segment: SegmentParams
    stft: StftParams
    audio: AudioParams
    split: SplitParams
    model: ModelParams
    loss: LossParams
    train: TrainParams
    evaluate: EvaluateParams
    table3: Table3Params

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _group(cls: type, name: str, raw: Any):
    if not isinstance(raw, dict):
        raise ParamsError(f"{name} must be a mapping of keys; got {raw!r}")
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamsError(f"unknown key {name}.{unknown[0]}; {name} takes {', '.join(fields)}")
    missing = [f for f in fields if f not in raw]
    if missing:
        raise ParamsError(f"missing key {name}.{missing[0]}")
    return cls(**raw)


def parse_params(raw: Any) -> Params:
    """Validate a params mapping (as loaded from YAML) into `Params`."""
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml must be a mapping of groups")
    groups = {f.name: f.type for f in dataclasses.fields(Params)}
    unknown = sorted(set(raw) - set(groups))
    if unknown:
        raise ParamsError(f"unknown group {unknown[0]!r}; params.yaml has {', '.join(groups)}")
    missing = [g for g in groups if g not in raw]
    if missing:
        raise ParamsError(f"missing group {missing[0]!r} in params.yaml")
    return Params(**{name: _group(globals()[cls], name, raw[name]) for name, cls in groups.items()})


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml (the stages run from the repository root)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from err
    return parse_params(raw)
