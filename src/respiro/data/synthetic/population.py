"""The clinical picture the synthetic corpus is drawn from: diagnoses and how their patients
sound, devices, sample formats, recording levels, chest locations and the split share.

ICBHI's own figures where the database documents them (126 patients, diagnoses, devices and
rates, locations); elsewhere the usual clinical picture.
"""

from __future__ import annotations

from dataclasses import dataclass

from respiro.data.icbhi import LOCATIONS


@dataclass(frozen=True)
class Diagnosis:
    """How patients with one diagnosis look and sound.

    `patients` is the count in ICBHI (the draw's weight); `recordings` the relative number of
    recordings per patient (ICBHI's COPD patients have ~12, the others ~2: 86 % of its
    recordings are COPD); `crackle` and `wheeze` the typical per-cycle probabilities of
    those sounds; `fine` the share of fine crackles; `devices` the weights of the device
    a patient is mostly recorded with.
    """

    patients: int
    ages: tuple[float, float]
    recordings: float
    crackle: float
    wheeze: float
    fine: float
    devices: dict[str, float]


_ADULT_DEVICES = {"AKGC417L": 0.55, "Litt3200": 0.12, "LittC2SE": 0.13, "Meditron": 0.20}
_CHILD_DEVICES = {"Meditron": 0.60, "AKGC417L": 0.25, "LittC2SE": 0.15}

DIAGNOSES: dict[str, Diagnosis] = {
    # COPD: coarse early-inspiratory crackles and expiratory wheezes, many recordings each.
    "COPD": Diagnosis(64, (45.0, 93.0), 12.0, 0.34, 0.165, 0.2, _ADULT_DEVICES),
    "Healthy": Diagnosis(26, (0.25, 16.0), 1.4, 0.04, 0.03, 0.5, _CHILD_DEVICES),
    "URTI": Diagnosis(14, (0.6, 16.0), 1.6, 0.12, 0.08, 0.5, _CHILD_DEVICES),
    # Bronchiectasis: abundant coarse crackles (secretions in dilated airways).
    "Bronchiectasis": Diagnosis(
        7, (19.0, 75.0), 2.3, 0.65, 0.10, 0.1, {"Meditron": 0.5, "AKGC417L": 0.3, "LittC2SE": 0.2}
    ),
    # Bronchiolitis (infants): fine crackles and wheezes together.
    "Bronchiolitis": Diagnosis(6, (0.5, 3.0), 2.2, 0.40, 0.40, 0.8, _CHILD_DEVICES),
    # Pneumonia: fine (later coarse) inspiratory crackles over the consolidation.
    "Pneumonia": Diagnosis(6, (4.0, 81.0), 6.0, 0.55, 0.10, 0.7, {"LittC2SE": 0.6, "Meditron": 0.2, "AKGC417L": 0.2}),
    "LRTI": Diagnosis(2, (0.5, 4.0), 1.0, 0.35, 0.12, 0.5, _CHILD_DEVICES),
    # Asthma: wheezes, few crackles.
    "Asthma": Diagnosis(1, (20.0, 70.0), 1.0, 0.05, 0.55, 0.5, {"LittC2SE": 0.5, "AKGC417L": 0.5}),
}

# Sampling rate and sample formats per device, as in the database: 44.1 kHz files are mostly
# 24 and 32 bit with some 16 bit; 4 kHz (and the few 10 kHz Meditron) files are 16 bit.
# The nominal rates are src.icbhi.DEVICE_RATES; a few Meditron files are 10 kHz.
HIFI_SUBTYPES = {"PCM_24": 0.45, "PCM_32": 0.35, "PCM_16": 0.20}
MEDITRON_10K_SHARE = 0.05
# Share of sessions recorded in multichannel mode (several chest locations at once): the
# AKG C417L rig was the multichannel one; some LittC2SE sessions too; the rest sequential.
MULTICHANNEL_SHARE = {"AKGC417L": 0.9, "LittC2SE": 0.4, "Litt3200": 0.0, "Meditron": 0.0}
# Typical recorded RMS level (dBFS) per device: spread over >20 dB with the recording and
# patient effects, so that volume normalisation has work to do.
DEVICE_LEVEL_DBFS = {"AKGC417L": -33.0, "LittC2SE": -27.0, "Litt3200": -19.0, "Meditron": -24.0}
# Chest locations weighted like the database's (Ar, Al most, Ll least).
LOCATION_WEIGHTS = dict(zip(LOCATIONS, (130, 162, 168, 139, 132, 77, 112)))  # Tc Al Ar Pl Pr Ll Lr
# Crackles arise in small airways and alveoli, most at the lung bases (posterior and lateral)
# and hardly reach the trachea; wheezes transmit well along the airways to the trachea.
# Logit offsets (crackle, wheeze) per location.
LOCATION_LOGIT = {
    "Tc": (-0.7, 0.3),
    "Al": (-0.2, 0.0),
    "Ar": (-0.2, 0.0),
    "Pl": (0.3, 0.0),
    "Pr": (0.3, 0.0),
    "Ll": (0.2, -0.1),
    "Lr": (0.2, -0.1),
}
SPLIT_TRAIN_SHARE = 0.6  # of recordings, patient-wise, as the official split
UPSAMPLE = {44100: 5}  # output rate -> synthesis at rate / factor (see render_recording)
