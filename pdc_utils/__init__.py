"""Distance correlation in TensorFlow and diverge training.

Imported before tensorflow or keras, the package keeps TensorFlow's start-up and optimiser log
lines out of notebooks (:mod:`pdc_utils.quiet`).
"""

from pdc_utils import quiet

quiet.quiet_tensorflow_import()
