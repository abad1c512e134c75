"""Measuring generated images: KID, FID, feature extractors, mode coverage and a KID callback.

- `kid`, `fid` (distances.py): distances between two sets of feature vectors; NumPy only.
- `InceptionFeatures`, `DomainFeatures` (features.py): images -> feature vectors.
- `mode_coverage` (coverage.py): which toy-face factor combinations a generator draws; NumPy only.
- `prdc` (precision_recall.py): precision, recall, density and coverage of feature vectors, fidelity and
  diversity apart; NumPy only.
- `CalibratedDecoder` (calibrated.py): reads the factors of generated, degraded faces and refuses
  images that are not faces; `mode_coverage(..., decoder="calibrated")` uses it.
- `Evaluator` (evaluator.py): all of these on generated images at once, with settings fixed once;
  what `KIDMonitor`, ganlib.experiments and the bench measure with. NumPy only.
- `KIDMonitor` (monitor.py): KID and coverage during training, as a Keras callback.
- `blank_share` (blank.py): the share of flat, "no output" images; NumPy only.
- `roughness_ratio` (roughness.py): how much rougher images are inside a region than outside it,
  e.g. where a discriminator cannot see; NumPy only.
- `sample_spread` (spread.py): how much images differ from each other, a collapse alarm; NumPy only.

Names load from their file on first use, so `kid` and `mode_coverage` work without TensorFlow.
"""

from ganlib.common import lazy_exports

_EXPORTS = {
    "nearest_mode": "ring",
    "ring_coverage": "ring",
    "kid": "distances",
    "fid": "distances",
    "InceptionFeatures": "features",
    "DomainFeatures": "features",
    "CalibratedDecoder": "calibrated",
    "INCEPTION_WEIGHTS_FILE": "features",
    "mode_coverage": "coverage",
    "NUM_COMBINATIONS": "coverage",
    "expected_distinct": "coverage",
    "prdc": "precision_recall",
    "Evaluator": "evaluator",
    "KIDMonitor": "monitor",
    "blank_share": "blank",
    "sample_spread": "spread",
    "roughness_ratio": "roughness",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
