"""InceptionFeatures without network: the error's first line is fit to show on a page."""

import re

import keras
import pytest

from ganlib import metrics


def test_first_line_says_what_to_use_instead_without_url_errno_or_path(monkeypatch):
    def offline(**kwargs):
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/tensorflow/keras-applications/"
            "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5: None -- "
            "[Errno -2] Name or service not known"
        )

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    with pytest.raises(FileNotFoundError) as info:
        metrics.InceptionFeatures()
    first, *details = str(info.value).splitlines()
    assert "DomainFeatures" in first
    assert not re.search(r"https?://|Errno|/root|~/|\.keras|\.h5", first), first
    assert first.count(". ") == 0 and first.endswith("."), f"not one sentence: {first!r}"
    # The details for a reader who wants InceptionV3 still follow, the cause last.
    rest = "\n".join(details)
    assert "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5" in rest
    assert "weights=" in rest and "Errno -2" in details[-1]
