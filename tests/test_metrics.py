"""ICBHI scores against confusion matrices worked out by hand."""

import numpy as np
import pytest

from respiro.evaluation.metrics import confusion_matrix, icbhi_scores, scores_of


def test_confusion_matrix_rows_are_true_columns_predicted():
    cm = confusion_matrix([0, 0, 1, 2, 3, 3], [0, 1, 1, 0, 3, 2])
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
    s = icbhi_scores(cm)
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
    s = scores_of(true, [0] * len(true))
    assert (s["se"], s["sp"], s["icbhi_score"]) == (0.0, 1.0, 0.5)
    assert s["accuracy"] == pytest.approx(30 / 50)
    assert s["binary"]["se"] == 0.0


def test_a_class_absent_from_the_test_set():
    # No Both cycles: its recall is undefined (None), SE counts the other abnormal classes.
    true = [0, 0, 1, 1, 2]
    pred = [0, 3, 1, 0, 2]
    s = scores_of(true, pred)
    assert s["recall"]["Both"] is None
    assert s["se"] == pytest.approx(2 / 3) and s["sp"] == pytest.approx(1 / 2)
    assert s["support"]["Both"] == 0


def test_no_abnormal_cycles_leaves_se_and_score_undefined():
    s = scores_of([0, 0, 0], [0, 1, 0])
    assert s["se"] is None and s["icbhi_score"] is None and s["sp"] == pytest.approx(2 / 3)


def test_labels_out_of_range_are_rejected():
    with pytest.raises(ValueError, match="0..3"):
        confusion_matrix([0, 4], [0, 1])
