"""ICBHI scores against confusion matrices worked out by hand."""

import numpy as np
import pytest

from respiro.core.schemes import SCHEMES
from respiro.evaluation.metrics import challenge_scores, confusion_matrix, icbhi_scores, scores_of

FOUR = SCHEMES["four"].classes


def test_confusion_matrix_rows_are_true_columns_predicted():
    cm = confusion_matrix([0, 0, 1, 2, 3, 3], [0, 1, 1, 0, 3, 2], 4)
    expected = np.zeros((4, 4), int)
    for t, p in [(0, 0), (0, 1), (1, 1), (2, 0), (3, 3), (3, 2)]:
        expected[t, p] += 1
    assert np.array_equal(cm, expected)


def test_scores_of_a_hand_worked_matrix():
    cm = np.array(
        [
            [40, 5, 3, 2],  # Normal: 50, 40 right
            [6, 12, 1, 1],  # Crackle: 20, 12 right
            [2, 1, 6, 1],  # Wheeze: 10, 6 right
            [1, 1, 1, 2],  # Both: 5, 2 right
        ]
    )
    s = icbhi_scores(cm, FOUR)
    assert s["sp"] == pytest.approx(40 / 50)
    assert s["se"] == pytest.approx((12 + 6 + 2) / (20 + 10 + 5))
    assert s["icbhi_score"] == pytest.approx((40 / 50 + 20 / 35) / 2)
    assert s["accuracy"] == pytest.approx(60 / 85)
    # Two-class view: an abnormal cycle predicted as any abnormal class counts.
    assert s["binary"]["se"] == pytest.approx((35 - 6 - 2 - 1) / 35)
    assert s["recall"] == pytest.approx({"Normal": 0.8, "Crackle": 0.6, "Wheeze": 0.6, "Both": 0.4})
    assert s["support"] == {"Normal": 50, "Crackle": 20, "Wheeze": 10, "Both": 5}


def test_a_model_that_predicts_normal_for_everything():
    true = [0] * 30 + [1] * 10 + [2] * 5 + [3] * 5
    s = scores_of(true, [0] * len(true), FOUR)
    assert (s["se"], s["sp"], s["icbhi_score"]) == (0.0, 1.0, 0.5)
    assert s["accuracy"] == pytest.approx(30 / 50)
    assert s["binary"]["se"] == 0.0


def test_a_class_absent_from_the_test_set():
    # No Both cycles: its recall is undefined (None), SE counts the other abnormal classes.
    true = [0, 0, 1, 1, 2]
    pred = [0, 3, 1, 0, 2]
    s = scores_of(true, pred, FOUR)
    assert s["recall"]["Both"] is None
    assert s["se"] == pytest.approx(2 / 3) and s["sp"] == pytest.approx(1 / 2)
    assert s["support"]["Both"] == 0


def test_no_abnormal_cycles_leaves_se_and_score_undefined():
    s = scores_of([0, 0, 0], [0, 1, 0], FOUR)
    assert s["se"] is None and s["icbhi_score"] is None and s["sp"] == pytest.approx(2 / 3)


def test_labels_out_of_range_are_rejected():
    with pytest.raises(ValueError, match="0..3"):
        confusion_matrix([0, 4], [0, 1], 4)


def test_evaluation_reports_of_a_small_test_set():
    from respiro.evaluation.reports import evaluation_details, headline_metrics
    from respiro.evaluation.test_set import CyclePredictions, SplitCorpus, prediction_rows, predictions_from_rows

    # Six cycles of the corpus: four test, one train, one val; patient 102 on both sides.
    patients = ["101", "101", "102", "103", "102", "104"]
    devices = ["Litt3200", "AKGC417L", "AKGC417L", "Litt3200", "Meditron", "Meditron"]
    cycles = [
        {"recording": f"r{i}", "patient": p, "start": "0", "end": f"{i + 1}", "device_corrected": d}
        for i, (p, d) in enumerate(zip(patients, devices))
    ]
    corpus = SplitCorpus(cycles, np.array(["test", "test", "test", "test", "train", "val"]))
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1], [0.1, 0.6, 0.2, 0.1], [0.4, 0.1, 0.3, 0.2]])
    predictions = CyclePredictions(corpus.test, np.array([0, 0, 1, 2]), probs.argmax(1), probs)
    origin = {"database": "icbhi", "data_source": "icbhi(official archive)", "synthetic_data": False}
    details = evaluation_details(predictions, corpus, SCHEMES["four"], origin, 7)
    assert details["confusion_matrix"]["counts"][0] == [1, 1, 0, 0] and details["cycles"] == 4
    assert list(details["per_device"]) == ["AKGC417L", "Litt3200"]  # sorted; only the test cycles'
    assert details["per_device"]["Litt3200"]["sp"] == 1.0 and details["per_device"]["Litt3200"]["se"] == 0.0
    assert details["test_patients"] == 3 and details["patients_in_train_and_test"] == ["102"]
    assert details["checkpoint_epoch"] == 7 and details["data_source"] == "icbhi(official archive)"
    headline = headline_metrics(details, 0.61)
    assert list(headline)[:4] == ["icbhi_score", "se", "sp", "accuracy"]
    assert headline["icbhi_score"] == pytest.approx((1 / 2 + 1 / 2) / 2) and headline["val_score"] == 0.61
    assert (
        headline["device_score"] == {"AKGC417L": 0.5, "Litt3200": 0.5} and headline["data"] == "icbhi(official archive)"
    )
    # The metrics name the database and the class scheme; the paper's scheme has no AS or HS.
    assert (headline["database"], headline["scheme"]) == ("icbhi", "four") and "hs" not in headline

    rows = prediction_rows(predictions, corpus, FOUR)
    assert [r["recording"] for r in rows] == ["r0", "r1", "r2", "r3"] and rows[3]["true_label"] == "Wheeze"
    assert rows[1]["p_Crackle"] == "0.500000" and rows[0]["device"] == "Litt3200"
    # Read back (the errors stage): the same answers, the probabilities to the CSV's 6 decimals.
    back = predictions_from_rows(rows, corpus, FOUR)
    assert np.array_equal(back.test, predictions.test) and np.array_equal(back.true, predictions.true)
    assert np.array_equal(back.pred, predictions.pred) and np.allclose(back.probs, probs, atol=5e-7)


def test_predictions_of_another_run_are_refused_naming_the_row():
    from respiro.evaluation.test_set import CyclePredictions, SplitCorpus, prediction_rows, predictions_from_rows

    cycles = [
        {"recording": f"r{i}", "patient": "1", "start": "0", "end": "1", "device_corrected": "d"} for i in range(3)
    ]
    corpus = SplitCorpus(cycles, np.array(["test", "train", "test"]))
    rows = prediction_rows(
        CyclePredictions(corpus.test, np.array([0, 1]), np.array([0, 0]), np.eye(4)[:2]), corpus, FOUR
    )
    other = SplitCorpus(cycles, np.array(["test", "test", "train"]))
    with pytest.raises(ValueError, match="row 2 is r2 0-1 s, but the split's test cycle 2 is r1"):
        predictions_from_rows(rows, other, FOUR)
    with pytest.raises(ValueError, match="2 predictions but the split has 3 test cycles"):
        predictions_from_rows(rows, SplitCorpus(cycles, np.array(["test"] * 3)), FOUR)
    with pytest.raises(ValueError, match="no column p_Adventitious"):
        predictions_from_rows(rows, corpus, SCHEMES["event_binary"].classes)
    with pytest.raises(ValueError, match="the split has 2 rows but the corpus 3 cycles"):
        SplitCorpus.from_split(cycles, [{"part": "test"}] * 2)
    with pytest.raises(ValueError, match="differ in length"):
        CyclePredictions(np.arange(2), np.zeros(2), np.zeros(3), np.zeros((2, 4)))


def test_no_cycles_give_a_matrix_of_zeros():
    assert np.array_equal(confusion_matrix([], [], 4), np.zeros((4, 4), int))


def test_sprsound_scores_add_the_average_and_harmonic_mean_of_se_and_sp():
    # SPRSound's challenge: AS = (SE + SP) / 2, HS = 2 SE SP / (SE + SP), SE over the abnormal
    # classes predicted as their own class (event task 1-1: two classes).
    cm = np.array([[30, 10], [5, 15]])
    s = challenge_scores(cm, SCHEMES["event_binary"].classes, "sprsound")
    se, sp = 15 / 20, 30 / 40
    assert (s["se"], s["sp"]) == (pytest.approx(se), pytest.approx(sp))
    assert s["as"] == pytest.approx((se + sp) / 2) and s["hs"] == pytest.approx(2 * se * sp / (se + sp))
    assert "hs" not in challenge_scores(np.eye(4, dtype=int), FOUR, "icbhi")


def test_evaluation_scores_each_official_test_part_on_its_own():
    from respiro.evaluation.reports import evaluation_details, headline_metrics
    from respiro.evaluation.test_set import CyclePredictions, SplitCorpus

    # SPRSound's inter- and intra-patient test parts are reported apart, and together.
    true, pred = np.array([0, 1, 0, 1]), np.array([0, 1, 1, 1])
    official = np.array(["test_inter", "test_inter", "test_intra", "test_intra"])
    origin = {"database": "sprsound", "data_source": "local(x)", "synthetic_data": False}
    cycles = [
        {
            "recording": f"r{i}",
            "patient": str(i),
            "start": "0",
            "end": "1",
            "device_corrected": "d",
            "official_split": o,
        }
        for i, o in enumerate(official)
    ]
    predictions = CyclePredictions(np.arange(4), true, pred, np.eye(2)[pred])
    corpus = SplitCorpus(cycles, np.array(["test"] * 4))
    details = evaluation_details(predictions, corpus, SCHEMES["event_binary"], origin, 1, by_official_part=True)
    # Without an official split the parts are not scored apart.
    assert "per_official_part" not in evaluation_details(predictions, corpus, SCHEMES["event_binary"], origin, 1)
    assert details["per_official_part"]["test_inter"]["hs"] == 1.0
    assert details["per_official_part"]["test_intra"]["sp"] == 0.0 and details["cycles"] == 4
    headline = headline_metrics(details, None)
    assert headline["part_score"] == {"test_inter": 1.0, "test_intra": 0.5}
    assert (headline["database"], headline["scheme"]) == ("sprsound", "event_binary") and "hs" in headline
