"""Traffic-world simulator: labelled worlds of API traffic for measuring detectors."""

import importlib.util
import sys

# pyarrow looks for dateutil on every pa.array() call when it is not installed; a failed import is
# not cached by Python, which cost ~20% of generation time. Record the absence once.
if importlib.util.find_spec("dateutil") is None:
    sys.modules.setdefault("dateutil.relativedelta", None)
