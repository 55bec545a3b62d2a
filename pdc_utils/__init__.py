"""Distance correlation in TensorFlow and diverge training.

Imported before tensorflow or keras, the package keeps TensorFlow's start-up and optimiser log
lines out of notebooks (:mod:`pdc_utils.quiet`); imported in a notebook's kernel, it shows its
own refusals (bad parameters, missing or damaged files, a run in use) as their message alone
(:mod:`pdc_utils.refusals`).
"""

from pdc_utils import quiet, refusals

quiet.quiet_tensorflow_import()
refusals.install()
