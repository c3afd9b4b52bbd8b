"""Prelabel's Python SDK: write a detector as a class, as the seed tutorial's ServiceRunner.

    class ServiceRunner:
        def __init__(self, model_filename: str, min_confidence: float): ...
        def detect(self, item: prelabel.Item) -> list[prelabel.Box]: ...

    WitWorld = prelabel.world(ServiceRunner)

`world` maps the class onto the component's `init` and `detect` exports:

- `__init__` receives the service's init inputs by name, checked against its signature
  (a missing, unknown or wrongly typed input is an `invalid-input` error naming it);
- `detect` receives an `Item` (`id`, `name`, `mimetype`, `metadata` as a dict, `data` as
  bytes) and returns `Box`, `Point` and `Label` values;
- the SDK's exceptions (`InvalidInput`, `InvalidItem`, `ArtifactError`) become the WIT error
  kinds; any other exception is an `internal` error carrying its type and message, with the
  traceback in the execution's logs (an uncaught exception would trap the instance);
- the `logging` module and `print` go to the execution's logs.

What pure Python cannot do fast inside a component, the host does: `image.blob` decodes an
item and makes a network's input (OpenCV's INTER_LINEAR resize, to the bit), and `Network`
runs an ONNX artifact through the standard wasi-nn (the deployer grants it with
`--allow-inference`).
"""

from __future__ import annotations

import array
import inspect
import json
import logging
import traceback
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from componentize_py_types import Err
from wit_world.imports import graph as _graph
from wit_world.imports import host as _host
from wit_world.imports import image as _image
from wit_world.imports import tensor as _tensor
from wit_world.imports import types as _types

__all__ = [
    "ArtifactError",
    "Box",
    "Item",
    "InvalidInput",
    "InvalidItem",
    "Label",
    "Network",
    "Point",
    "Tensor",
    "artifact",
    "blob",
    "world",
]


# --- errors ----------------------------------------------------------------------------


class DetectorError(Exception):
    """An error the detector reports; its kind is one of the WIT error kinds."""

    kind = _types.ErrorKind.INTERNAL


class InvalidInput(DetectorError):
    """The init inputs are missing, of the wrong type or out of range."""

    kind = _types.ErrorKind.INVALID_INPUT


class InvalidItem(DetectorError):
    """The item cannot be processed (undecodable, too large, wrong type)."""

    kind = _types.ErrorKind.INVALID_ITEM


class ArtifactError(DetectorError):
    """An artifact is missing or unusable (for example a corrupt model)."""

    kind = _types.ErrorKind.ARTIFACT


def _error(kind: _types.ErrorKind, message: str) -> Err:
    return Err(_types.Error(kind, message))


def _reported(e: BaseException) -> Err:
    """Any exception as the WIT error the host stores; the traceback goes to the logs."""
    if isinstance(e, Err):
        value = e.value
        if isinstance(value, _types.Error):
            return e
        # A wasi-nn error resource: its words.
        data = getattr(value, "data", None)
        return _error(_types.ErrorKind.INTERNAL, data() if callable(data) else repr(value))
    if isinstance(e, DetectorError):
        return _error(e.kind, str(e))
    _host.log(_host.Level.ERROR, traceback.format_exc())
    return _error(_types.ErrorKind.INTERNAL, f"{type(e).__name__}: {e}")


# --- what detect receives and returns ---------------------------------------------------


@dataclass(frozen=True)
class Item:
    """The item to annotate: the host has downloaded its bytes."""

    id: str
    name: str
    mimetype: str
    metadata: dict
    data: bytes


@dataclass
class Box:
    """An axis-aligned box in pixels of the original image."""

    left: float
    top: float
    right: float
    bottom: float
    label: str
    confidence: float = 1.0

    def clipped(self, width: float, height: float) -> Optional["Box"]:
        """The box clipped to a `width` x `height` image, or None when under 1 px² is
        left (the box policy of Prelabel's Rust detectors)."""
        left, right = (min(max(v, 0.0), width) for v in (self.left, self.right))
        top, bottom = (min(max(v, 0.0), height) for v in (self.top, self.bottom))
        if max(right - left, 0.0) * max(bottom - top, 0.0) < 1.0:
            return None
        return Box(left, top, right, bottom, self.label, self.confidence)


@dataclass
class Point:
    """A point in pixels of the original image (a landmark)."""

    x: float
    y: float
    label: str
    confidence: float = 1.0


@dataclass
class Label:
    """A label for the whole item (a classification)."""

    label: str
    confidence: float = 1.0


def _annotation(found: Any, model: _types.ModelInfo) -> _types.Annotation:
    if isinstance(found, Box):
        geometry = _types.Geometry_Bbox(
            _types.Bbox(float(found.left), float(found.top), float(found.right), float(found.bottom))
        )
    elif isinstance(found, Point):
        geometry = _types.Geometry_Point(_types.Point(float(found.x), float(found.y)))
    elif isinstance(found, Label):
        geometry = _types.Geometry_Classification()
    else:
        raise TypeError(f"detect must return Box, Point or Label values, got {type(found).__name__}")
    info = _types.ModelInfo(model.name, model.version, float(found.confidence))
    return _types.Annotation(geometry, str(found.label), info)


# --- host services ----------------------------------------------------------------------


def artifact(name: str) -> bytes:
    """The bytes of an artifact of the package, by name."""
    return _host.artifact(name)


class Tensor:
    """An f32 tensor: its `shape`, and its `values` flat, row-major (an `array('f')`).

    One the host made (`blob`, a network's output) stays on the host until its values are
    read; `Network.run` hands it back without copying it through Python."""

    def __init__(self, shape: Iterable[int], values: Iterable[float]):
        self.shape = [int(d) for d in shape]
        self._values = values if isinstance(values, array.array) else array.array("f", values)
        self._handle = None

    @classmethod
    def _held(cls, handle: _tensor.Tensor) -> "Tensor":
        tensor = cls.__new__(cls)
        tensor.shape = list(handle.dimensions())
        tensor._values = None
        tensor._handle = handle
        return tensor

    @property
    def values(self) -> array.array:
        if self._values is None:
            if self._handle is None:
                raise ValueError("this tensor was given to a network, which took its values")
            if self._handle.ty() != _tensor.TensorType.FP32:
                raise TypeError(f"only f32 tensors are read, got {self._handle.ty().name}")
            values = array.array("f")
            values.frombytes(self._handle.data())
            self._values = values
        return self._values

    def _give(self) -> _tensor.Tensor:
        """The host's handle for a network's input (the network takes it)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            return handle
        return _tensor.Tensor(self.shape, _tensor.TensorType.FP32, self.values.tobytes())


def blob(
    data: bytes,
    size: tuple[int, int],
    mean: Iterable[float] = (),
    scale: float = 1.0,
    bgr: bool = False,
    planar: bool = True,
    max_pixels: Optional[int] = None,
) -> tuple[tuple[int, int], Tensor]:
    """`cv2.dnn.blobFromImage(cv2.resize(image, size), scale, size, mean)`, done by the host
    on an item's encoded bytes: returns the image's (width, height) and the network's input,
    a `Tensor` (NCHW unless `planar` is false; RGB unless `bgr`). An image the host cannot
    decode, or over the pixel limit, raises the `invalid-item` error naming why."""
    options = _image.BlobOptions(
        width=int(size[0]),
        height=int(size[1]),
        channels=_image.ChannelOrder.BGR if bgr else _image.ChannelOrder.RGB,
        mean=[float(m) for m in mean],
        scale=float(scale),
        layout=_image.Layout.NCHW if planar else _image.Layout.NHWC,
        max_pixels=max_pixels,
    )
    found, handle = _image.blob(data, options)
    return (found.width, found.height), Tensor._held(handle)


class Network:
    """An ONNX artifact of the package, run natively by the host through wasi-nn. Loading
    needs the deployer's `--allow-inference`; without it this raises `ArtifactError`."""

    def __init__(self, artifact_name: str):
        try:
            self._graph = _graph.load_by_name(artifact_name)
            self._context = self._graph.init_execution_context()
        except Err as e:
            raise ArtifactError(f"artifact `{artifact_name}`: {_reported(e).value.message}") from None

    def run(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Runs the network on its inputs by name; returns its outputs by name."""
        outputs = self._context.compute([(name, tensor._give()) for name, tensor in inputs.items()])
        return {name: Tensor._held(handle) for name, handle in outputs}


# --- logging ----------------------------------------------------------------------------


class _HostLog(logging.Handler):
    LEVELS = [
        (logging.ERROR, _host.Level.ERROR),
        (logging.WARNING, _host.Level.WARN),
        (logging.INFO, _host.Level.INFO),
        (logging.DEBUG, _host.Level.DEBUG),
    ]

    def emit(self, record: logging.LogRecord) -> None:
        level = next((lv for at, lv in self.LEVELS if record.levelno >= at), _host.Level.TRACE)
        _host.log(level, self.format(record))


def _log_to_host() -> None:
    root = logging.getLogger()
    if not any(isinstance(h, _HostLog) for h in root.handlers):
        root.addHandler(_HostLog())
        root.setLevel(logging.INFO)


# --- the mapping onto the world ---------------------------------------------------------

_PLAIN = {str: "string", float: "float", int: "integer", bool: "boolean"}


def _typed(name: str, value: Any, annotation: Any) -> Any:
    """`value` as the parameter's annotated type, or InvalidInput naming both."""
    if isinstance(annotation, str):
        annotation = {"str": str, "float": float, "int": int, "bool": bool}.get(annotation, annotation)
    if annotation is inspect.Parameter.empty or annotation not in _PLAIN:
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not annotation:
        raise InvalidInput(
            f"init input `{name}` must be a {_PLAIN[annotation]}, got {type(value).__name__} {value!r}"
        )
    return value


def _arguments(cls: type, inputs: dict[str, Any]) -> dict[str, Any]:
    """The init inputs as keyword arguments of `cls.__init__`, checked by name and type."""
    # A class without `__init__` takes nothing (object's own says `*args, **kwargs`).
    init = cls.__init__
    parameters = [] if init is object.__init__ else list(inspect.signature(init).parameters.values())[1:]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    variadic = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    named = {p.name: p for p in parameters if p.kind not in variadic}
    unknown = sorted(set(inputs) - set(named))
    if unknown and not takes_any:
        raise InvalidInput(
            f"init input `{unknown[0]}` is not a parameter of {cls.__name__}.__init__ "
            f"(it takes: {', '.join(named) or 'nothing'})"
        )
    arguments = {}
    for name, parameter in named.items():
        if name in inputs:
            arguments[name] = _typed(name, inputs[name], parameter.annotation)
        elif parameter.default is inspect.Parameter.empty:
            raise InvalidInput(f"init input `{name}` is missing")
    for name in unknown:
        arguments[name] = inputs[name]
    return arguments


def world(cls: type) -> type:
    """The component's exports for a detector class: `WitWorld = prelabel.world(MyDetector)`.

    The class may set `model_name` and `model_version` (what each annotation says made it;
    by default the class's name and "0")."""

    class WitWorld:
        runner = None

        def init(self, inputs: list) -> None:
            _log_to_host()
            if WitWorld.runner is not None:
                raise _error(_types.ErrorKind.INTERNAL, "init was already called on this instance")
            try:
                given = {i.name: i.value.value for i in inputs}
                WitWorld.runner = cls(**_arguments(cls, given))
            except BaseException as e:  # noqa: BLE001 - every failure is reported, none traps
                raise _reported(e) from None

        def detect(self, item: Any) -> list:
            runner = WitWorld.runner
            if runner is None:
                raise _error(_types.ErrorKind.NOT_INITIALIZED, "detect called before init")
            try:
                try:
                    metadata = json.loads(item.metadata) if item.metadata else {}
                except ValueError:
                    metadata = {}
                found = runner.detect(Item(item.id, item.name, item.mimetype, metadata, item.data))
                model = _types.ModelInfo(
                    str(getattr(runner, "model_name", cls.__name__)),
                    str(getattr(runner, "model_version", "0")),
                    0.0,
                )
                return [_annotation(f, model) for f in (found or [])]
            except BaseException as e:  # noqa: BLE001
                raise _reported(e) from None

    WitWorld.__name__ = f"WitWorld[{cls.__name__}]"
    return WitWorld
