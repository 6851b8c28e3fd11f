"""The one registry of per-exchange detectors.

A detector is a small class with a ``name``, a ``version``, a docstring that says what attack
behaviour it sees and why that is evidence, and ``score(batch, ctx)``: a pure function of an
Arrow RecordBatch of exchanges returning a float32 array in [0, 1], one score per row. Pure
functions over record batches are what lets the stage run unchanged under Spark's
``mapInArrow`` or Ray later: no state crosses batches.

distillguard's own detectors register exactly as a third-party plugin does. A plugin package
declares an entry point in the group ``distillguard.signals`` pointing at a Detector subclass
(or a module that registers its detectors on import)::

    [project.entry-points."distillguard.signals"]
    my_detector = "my_pkg.signals:MyDetector"

Its scores then appear as ``sig_<name>`` in ``exchange_signals`` and in ``distillguard classify``.
"""

from __future__ import annotations

import inspect
import re
import threading
from importlib.metadata import entry_points

import numpy as np
import pyarrow as pa

from distillguard.errors import ConfigError

ENTRY_POINT_GROUP = "distillguard.signals"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class Detector:
    """Base class of every per-exchange detector (subclass it; override ``score``)."""

    #: Column suffix: scores land in ``sig_<name>``. Lower snake case.
    name: str = ""
    #: Bump when the scoring changes, so stored scores can be told apart.
    version: str = "1"
    #: Exchange columns the detector reads (scan reads only the union of these).
    columns: tuple[str, ...] = ("prompt",)

    def score(self, batch: pa.RecordBatch, ctx=None) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def description(cls) -> str:
        # The class's own docstring (not inherited from Detector): each detector must explain itself.
        doc = cls.__dict__.get("__doc__") or ""
        return inspect.cleandoc(doc).strip()

    @classmethod
    def summary(cls) -> str:
        return cls.description().split("\n\n")[0].replace("\n", " ")


class Registry:
    def __init__(self) -> None:
        self._detectors: dict[str, Detector] = {}
        self._loaded = False
        self._lock = threading.RLock()

    def register(self, cls_or_obj):
        """Register a Detector subclass (usable as a class decorator) or instance."""
        det = cls_or_obj() if isinstance(cls_or_obj, type) else cls_or_obj
        if not isinstance(det, Detector):
            raise ConfigError(f"{cls_or_obj!r} is not a distillguard.signals.Detector")
        if not _NAME_RE.match(det.name or ""):
            raise ConfigError(f"detector {type(det).__name__}: name {det.name!r} must be lower_snake_case")
        if not det.description():
            raise ConfigError(f"detector {det.name!r}: give it a docstring saying what it sees and why it is evidence")
        with self._lock:
            have = self._detectors.get(det.name)
            if have is not None and type(have) is not type(det):
                raise ConfigError(f"two detectors named {det.name!r}: {type(have).__module__}.{type(have).__name__} "
                                  f"and {type(det).__module__}.{type(det).__name__}")
            self._detectors[det.name] = det
        return cls_or_obj

    def unregister(self, name: str) -> None:
        with self._lock:
            self._detectors.pop(name, None)

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            from distillguard.signals.detectors import BUILTIN

            # The built-ins go through the same call a plugin's entry point does.
            for cls in BUILTIN:
                self.register(cls)
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    obj = ep.load()
                except Exception as e:  # noqa: BLE001 - a broken plugin must be named, not crash the scan
                    raise ConfigError(f"signals plugin {ep.name!r} ({ep.value}) failed to load: {e}") from e
                if isinstance(obj, type) and issubclass(obj, Detector):
                    self.register(obj)
                elif isinstance(obj, Detector):
                    self.register(obj)
                # a module object: it registered its detectors on import

    def all(self) -> list[Detector]:
        self._load()
        with self._lock:
            return list(self._detectors.values())

    def get(self, name: str) -> Detector:
        self._load()
        try:
            return self._detectors[name]
        except KeyError:
            raise ConfigError(f"no detector named {name!r}; registered: {', '.join(sorted(self._detectors))}") from None

    def select(self, names: list[str] | None) -> list[Detector]:
        if names is None:
            return self.all()
        return [self.get(n) for n in names]


REGISTRY = Registry()


def register(cls_or_obj):
    """Class decorator / function: add a detector to the registry."""
    return REGISTRY.register(cls_or_obj)


def detectors(names: list[str] | None = None) -> list[Detector]:
    return REGISTRY.select(names)
