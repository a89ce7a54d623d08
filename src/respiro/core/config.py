"""params.yaml's schema: the one place that owns every allowed value of the pipeline.

One pydantic model per params group (`extra="forbid"`: a misspelt key silently ignored would
run the experiment the user did not ask for; `strict`: "12" is not 12 and `true` is not 1;
every float finite: NaN slips through any range check). Cross-field rules sit with the
fields they relate. `load_params` reads the file once and turns the first violation into a
ParamsError of one line that names the key and what is allowed
(`train.optimizer: input should be 'adam' or 'sgd'; got 'adamw'`). The code these values
configure trusts them; a checkpoint's stored params go through the same models (`validate_group`).

pydantic rather than dataclasses with hand-written checkers: allowed values become types
(`Literal["adam", "sgd"]`, `Field(ge=1)`), and the messages come for free and stay in step with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from respiro.core.errors import MissingInputError, ParamsError
from respiro.core.schemes import SCHEMES, ClassScheme, SchemeName, own_scheme

Finite = Annotated[float, Field(allow_inf_nan=False)]
# Allowed values the library also names in its signatures (the schema checks them, it trusts them).
ResampleMethod = Literal["soxr", "torchaudio"]
NormalizeMethod = Literal["rms", "peak", "none"]
PadMode = Literal["repeat", "zero"]
Window = Literal["hann", "hamming"]
Scale = Literal["log", "db", "linear"]
# stft: the paper's power spectrogram; fbank: the AST's log-mel filterbank (audio/fbank.py).
Frontend = Literal["stft", "fbank"]
SplitMethod = Literal["official", "patient", "folds", "random"]
LossName = Literal["focal", "ce"]
Optimizer = Literal["adam", "sgd"]
Schedule = Literal["cosine", "step", "constant"]
Device = Literal["auto", "cpu", "cuda"]
# auto: the training step as a CUDA graph where the device allows (training/step.py); off: eager.
Capture = Literal["auto", "off"]
# tf32: float32 on a GPU's TF32 tensor cores (training/precision.py); strict: float32 on
# kernels that give the same bytes on any thread count (core/kernels.py).
Precision = Literal["auto", "fp32", "tf32", "bf16", "strict"]
Path_ = Annotated[str, Field(min_length=1)]


UNKNOWN_KEY = "unknown key"  # what a validator says of an extra key that is no group's


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# How a database's files reach data/raw: generated, downloaded from its publisher, or the user's.
Source = Literal["synthetic", "download", "local"]


class DataParams(Group):
    """Which database, from where. The name is checked against the registry of databases
    (respiro.data.databases), which also validates the database's own params group (the
    top-level group of its name: `icbhi:`, `csv:`)."""

    database: Annotated[str, Field(min_length=1)]
    source: Source
    local_path: Path_


class DatabaseGroup(Group):
    """Base of a database's own params group (respiro.data.databases). Its keys have defaults,
    so a database whose group params.yaml leaves out still runs (and `respiro predict` can
    read its annotations without a params.yaml)."""


class SyntheticParams(Group):
    """The synthetic corpus: `recordings` spread over `patients` (each has at least one) of
    mean length `recording_seconds`. Patient ids are three digits from 101, as in ICBHI."""

    seed: Annotated[int, Field(ge=0)]
    patients: Annotated[int, Field(ge=1, le=899)]
    recordings: int
    recording_seconds: Annotated[Finite, Field(ge=5.0, le=600.0)]

    @model_validator(mode="after")
    def _recordings_cover_patients(self) -> SyntheticParams:
        if self.recordings < self.patients:
            raise ValueError(f"recordings: must be >= synthetic.patients ({self.patients}); got {self.recordings}")
        return self


class ClassesParams(Group):
    """The class scheme (respiro.core.schemes): the classes the model learns; `own` lists the
    user's own (scheme: own), the normal class first; `mapping` sends a database's labels to
    classes of the scheme (None: leave such events out), before the database's own mapping."""

    scheme: SchemeName
    own: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(strict=False, min_length=2)] | None
    mapping: Annotated[dict[str, str | None], Field(strict=False)] | None

    @model_validator(mode="after")
    def _own_with_own(self) -> ClassesParams:
        if self.scheme == "own" and self.own is None:
            raise ValueError(
                "own: classes.scheme own needs your classes here, the normal one first: [normal, crackles]"
            )
        if self.scheme != "own" and self.own is not None:
            raise ValueError(f"own: lists classes for classes.scheme own only (it is {self.scheme}); set it to null")
        if self.own is not None and len(set(self.own)) != len(self.own):
            raise ValueError(f"own: the classes must be distinct; got {list(self.own)}")
        return self

    @model_validator(mode="after")
    def _mapping_onto_the_scheme(self) -> ClassesParams:
        classes = self.class_scheme().classes
        for label, name in (self.mapping or {}).items():
            if name is not None and name not in classes:
                raise ValueError(
                    f"mapping: {label!r} goes to {name!r}, not a class of classes.scheme {self.scheme} "
                    f"({', '.join(classes)}); or null to leave such events out"
                )
        return self

    def class_scheme(self) -> ClassScheme:
        """The chosen scheme: a named one of SCHEMES, or own_scheme of `own`."""
        return own_scheme(self.own) if self.own is not None else SCHEMES[self.scheme]


class ResampleParams(Group):
    rate: Annotated[int, Field(ge=1000, le=192000)]
    method: ResampleMethod


class NormalizeParams(Group):
    method: NormalizeMethod
    target_dbfs: Annotated[Finite, Field(ge=-100.0, le=0.0)]


class SegmentParams(Group):
    duration: Annotated[Finite, Field(gt=0.0, le=60.0)]
    pad: PadMode


class StftParams(Group):
    frontend: Frontend
    n_fft: Annotated[int, Field(ge=16, le=8192)]
    hop_length: Annotated[int, Field(ge=1)]
    window: Window
    scale: Scale
    top_db: Annotated[Finite, Field(gt=0.0)]
    n_mels: Annotated[int, Field(ge=1, le=1024)]

    @model_validator(mode="after")
    def _hop_within_window(self) -> StftParams:
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length: must be <= stft.n_fft ({self.n_fft}); got {self.hop_length}")
        return self


class AudioParams(Group):
    workers: Annotated[int, Field(ge=0)]


class SplitParams(Group):
    method: SplitMethod
    test_fraction: Annotated[Finite, Field(gt=0.0, lt=1.0)]
    folds_file: Path_ | None
    n_folds: Annotated[int, Field(ge=2)]
    fold: Annotated[int, Field(ge=0)]
    seed: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _fold_exists(self) -> SplitParams:
        if self.fold >= self.n_folds:
            raise ValueError(f"fold: must be < split.n_folds ({self.n_folds}); got {self.fold}")
        return self


class ModelParams(Group):
    """The network. `arch` is checked against the registry of architectures
    (respiro.model.registry), which also checks that the network has what `cbam` and
    `pretrained` ask of it."""

    # A network's own settings sit in a mapping under its name (model.<arch>: {...}),
    # validated by that architecture (Architecture.options_schema); only mappings may be extra.
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    arch: Annotated[str, Field(min_length=1)]
    cbam: bool
    cbam_reduction: Annotated[int, Field(ge=1)]
    pretrained: Literal["none", "imagenet", "audioset"]

    @model_validator(mode="before")
    @classmethod
    def _extras_are_groups(cls, raw: Any) -> Any:
        # Before the fields: a misspelt key is named first, as extra="forbid" would.
        for key, value in raw.items() if isinstance(raw, Mapping) else ():
            if key not in cls.model_fields and not isinstance(value, Mapping):
                raise ValueError(f"{key}: {UNKNOWN_KEY}")
        return raw

    def options_of(self, arch: str) -> Mapping[str, Any]:
        """The settings written under the network's name (model.<arch>), {} where none are."""
        return (self.model_extra or {}).get(arch, {})


class PretrainedParams(Group):
    path: Path_ | None
    url: Annotated[str, Field(pattern=r"^https?://\S+$")]
    # For a weights file whose published name carries no hash (model.pretrained: audioset).
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None


Weight = Annotated[Finite, Field(ge=0.0)]


class LossParams(Group):
    """alpha: None (no weighting), one number in (0, 1] scaling every class alike, or one
    non-negative weight per class of `classes.scheme` in its order, not all 0 (the count is
    checked against the scheme in Params)."""

    name: LossName
    gamma: Annotated[Finite, Field(ge=0.0)]
    alpha: Annotated[Finite, Field(gt=0.0, le=1.0)] | Annotated[tuple[Weight, ...], Field(strict=False)] | None

    @model_validator(mode="after")
    def _alpha_per_class(self) -> LossParams:
        if isinstance(self.alpha, tuple):
            if sum(self.alpha) <= 0:
                raise ValueError("alpha: the weights must not all be 0")
        return self


class TrainParams(Group):
    epochs: Annotated[int, Field(ge=1)]
    batch_size: Annotated[int, Field(ge=1)]
    optimizer: Optimizer
    lr: Annotated[Finite, Field(gt=0.0)]
    schedule: Schedule
    weight_decay: Annotated[Finite, Field(ge=0.0)]
    val_fraction: Annotated[Finite, Field(gt=0.0, lt=1.0)]
    time_mask: Annotated[int, Field(ge=0)]
    freq_mask: Annotated[int, Field(ge=0)]
    seed: Annotated[int, Field(ge=0)]
    device: Device
    precision: Precision
    capture: Capture
    processes: Annotated[int, Field(ge=1)]
    # Fine-tuning controls, ignored with model.pretrained: none (so a grid can mix both).
    backbone_lr_factor: Annotated[Finite, Field(gt=0.0)]
    freeze_epochs: Annotated[int, Field(ge=0)]
    # bins: standardize each frequency bin on the training cycles; frontend: keep the
    # front-end's own scale (the fbank's AST normalisation, what AudioSet weights saw).
    standardize: Literal["bins", "frontend"]

    @model_validator(mode="after")
    def _strict_on_one_cpu_process(self) -> TrainParams:
        # Strict kernels are CPU kernels, and gloo's all-reduce of several processes sums in
        # an order of its own.
        if self.precision == "strict" and self.device == "cuda":
            raise ValueError("precision: strict runs on the CPU; set train.device to auto or cpu")
        if self.precision == "tf32" and self.device == "cpu":
            raise ValueError(
                "precision: tf32 is a GPU arithmetic; set train.device to auto or cuda, or precision to fp32"
            )
        if self.precision == "strict" and self.processes != 1:
            raise ValueError(f"precision: strict runs in one process; set train.processes to 1 (got {self.processes})")
        return self


class EvaluateParams(Group):
    batch_size: Annotated[int, Field(ge=1)]


class ErrorsParams(Group):
    per_cell: Annotated[int, Field(ge=0)]


class Table3Params(Group):
    seeds: Annotated[tuple[Annotated[int, Field(ge=0)], ...], Field(strict=False, min_length=1)]
    bootstrap: Annotated[int, Field(ge=100)]
    bootstrap_seed: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _distinct_seeds(self) -> Table3Params:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: must be distinct; got {list(self.seeds)}")
        return self


class Params(Group):
    data: DataParams
    classes: ClassesParams
    synthetic: SyntheticParams
    resample: ResampleParams
    normalize: NormalizeParams
    segment: SegmentParams
    stft: StftParams
    audio: AudioParams
    split: SplitParams
    model: ModelParams
    pretrained: PretrainedParams
    loss: LossParams
    train: TrainParams
    evaluate: EvaluateParams
    errors: ErrorsParams
    table3: Table3Params
    # Every other top-level group, as written: the databases' own groups, validated by the
    # database that owns each (respiro.data.databases.get_database, which also refuses a group
    # no database owns).
    databases: Annotated[dict[str, dict[str, Any]], Field(strict=False)] = {}

    @model_validator(mode="after")
    def _cycle_holds_a_window(self) -> Params:
        # Checked here, before any stage runs, rather than by the stft stage failing later.
        samples = round(self.segment.duration * self.resample.rate)
        if samples < self.stft.n_fft:
            raise ValueError(
                f"segment.duration: {self.segment.duration} s is {samples} samples at resample.rate "
                f"{self.resample.rate} Hz, shorter than one STFT window (stft.n_fft = {self.stft.n_fft})"
            )
        return self

    @model_validator(mode="after")
    def _alpha_fits_the_scheme(self) -> Params:
        scheme = self.classes.class_scheme()
        alpha = self.loss.alpha
        if isinstance(alpha, tuple) and len(alpha) != len(scheme.classes):
            raise ValueError(
                f"loss.alpha: a list needs {len(scheme.classes)} weights in the order of classes.scheme "
                f"{scheme.name} [{', '.join(scheme.classes)}]; got {len(alpha)}"
            )
        return self

    def as_dict(self) -> dict[str, Any]:
        """params.yaml's shape: every group at the top level, the databases' too."""
        return {**self.model_dump(exclude={"databases"}), **self.databases}


GROUPS: dict[str, type[Group]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Params.model_fields.items()
    if name != "databases"
}
_FIELD_NAMES = {name for group in GROUPS.values() for name in group.model_fields}


def _key(prefix: str, loc: tuple[Any, ...], names: set[str] = _FIELD_NAMES) -> str:
    """`('alpha', 'tuple[...]', 1)` under `loss` -> `loss.alpha[1]`: keys and list indices,
    without the names pydantic gives the members of a union."""
    key = prefix
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif part in names:
            key = f"{key}.{part}" if key else part
    return key


def _one_line(err: ValidationError, prefix: str = "", schema: type[Group] | None = None) -> str:
    """The first violation as `group.key: what is allowed; got VALUE`."""
    errors = err.errors(include_url=False)
    # An unknown key first: with a misspelt key, the "missing" one is the same mistake. A union
    # (loss.alpha) reports one error per member; a type mismatch with one member says less than
    # a range error of the member that fits the value's type.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), None)
    first = first or next((e for e in errors if not e["type"].endswith("_type")), errors[0])
    names = _FIELD_NAMES | set(schema.model_fields) if schema else _FIELD_NAMES
    key = _key(prefix, first["loc"], names)
    message = first["msg"]
    if first["type"] == "value_error":
        # Our validators start with the field: `fold: must be < ...`.
        field, _, rest = message.removeprefix("Value error, ").partition(": ")
        if rest == UNKNOWN_KEY:  # an extra key a group allows only as a mapping (model.<arch>)
            group = schema or GROUPS.get(prefix)
            known = f"; {prefix} takes {', '.join(group.model_fields)}" if group else ""
            return f"unknown key {prefix}.{field}{known}"
        return f"{_key(key, (field,), names) if field in names else field}: {rest}"
    if first["type"] == "extra_forbidden":
        group = schema or GROUPS.get(prefix)
        known = f"; {prefix} takes {', '.join(group.model_fields)}" if group else ""
        return f"unknown key {prefix}.{first['loc'][-1]}{known}"
    if first["type"] == "missing":
        return f"missing key {key}"
    return f"{key}: {message[0].lower()}{message[1:]}; got {first['input']!r}"


def validate_group(name: str, raw: Any, schema: type[Group] | None = None) -> Group:
    """One params group (`resample`, `model`, ...) from a mapping, e.g. a checkpoint's copy;
    `schema` for a group that is not one of GROUPS (a database's own)."""
    if schema is None and name not in GROUPS:
        raise ParamsError(f"unknown group {name!r}; params.yaml has {', '.join(GROUPS)}")
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{name} must be a mapping of keys; got {raw!r}")
    try:
        return (schema or GROUPS[name]).model_validate(dict(raw))
    except ValidationError as err:
        raise ParamsError(_one_line(err, name, schema)) from None


def parse_params(raw: Any) -> Params:
    """Validate a params mapping (as loaded from YAML) into `Params`."""
    if not isinstance(raw, Mapping):
        raise ParamsError("params.yaml must be a mapping of groups")
    missing = [g for g in GROUPS if g not in raw]
    if missing:
        raise ParamsError(f"missing group {missing[0]!r} in params.yaml")
    groups: dict[str, Any] = {name: validate_group(name, raw[name]) for name in GROUPS}
    databases = {name: raw[name] for name in raw if name not in GROUPS}
    for name, values in databases.items():
        if not isinstance(values, Mapping):
            raise ParamsError(f"{name} must be a mapping of keys (a database's params group); got {values!r}")
    try:
        return Params.model_validate({**groups, "databases": {k: dict(v) for k, v in databases.items()}})
    except ValidationError as err:
        raise ParamsError(_one_line(err)) from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml (the stages run from the repository root)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such params file (run from the project root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from err
    return parse_params(raw)
