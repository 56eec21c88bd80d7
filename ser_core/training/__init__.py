"""Training: the corpora and their feature tables (:mod:`~ser_core.training.corpora`), fitting and
speaker-independent evaluation of the default, adapted and intensity models (:mod:`~ser_core.training.fit`,
:mod:`~ser_core.training.adapted`, :mod:`~ser_core.training.intensity`), the Keras networks
(:mod:`~ser_core.training.networks`), the bundle with its report (:mod:`~ser_core.training.build`,
:mod:`~ser_core.training.report`) and exports for other runtimes (:mod:`~ser_core.training.export`).
Needs the training packages (TensorFlow, librosa, scikit-learn); serving never imports it."""
