"""The Python SDK (guest/python/prelabel.py) in plain CPython, against the bindings
componentize-py generates for the world: how a class is mapped onto `init` and `detect`.
The host's imports are replaced by recorders (in a component, the host answers them).

Run by tests/it/python.rs with PYTHONPATH = the generated bindings + guest/python."""

import unittest

from componentize_py_types import Err
from wit_world.imports import host, types

import prelabel
from prelabel import Box, Label, Point

LOGGED = []
host.log = lambda level, message: LOGGED.append((level, message))


def inputs(**values):
    wrap = {str: types.Value_String, float: types.Value_Float, bool: types.Value_Boolean, int: types.Value_Integer}
    return [types.InitInput(name, wrap[type(v)](v)) for name, v in values.items()]


def item(name="a.png"):
    return types.Item("1", name, "image/png", '{"system": {"width": 10}}', b"bytes")


class Runner:
    def __init__(self, model_filename: str, min_confidence: float = 0.5, flip: bool = False):
        self.args = (model_filename, min_confidence, flip)

    def detect(self, item):
        if item.name == "boom.png":
            raise ValueError("boom")
        if item.name == "bad.png":
            raise prelabel.InvalidItem("not mine")
        if item.name == "odd.png":
            return [42]
        return [Box(1, 2, 3, 4, "face", 0.9), Point(5, 6, "eye"), Label(str(item.metadata["system"]["width"]))]


def fresh(cls):
    world = prelabel.world(cls)
    return world, world()


def error(call):
    try:
        call()
    except Err as e:
        return e.value
    raise AssertionError("no error")


class InitInputs(unittest.TestCase):
    def test_by_name_and_type_with_defaults_and_ints_taken_as_floats(self):
        world, w = fresh(Runner)
        w.init(inputs(model_filename="m.onnx", min_confidence=1))
        self.assertEqual(world.runner.args, ("m.onnx", 1.0, False))
        self.assertIsInstance(world.runner.args[1], float)

    def test_missing_unknown_and_mistyped_inputs_are_named(self):
        cases = [
            (inputs(), "init input `model_filename` is missing"),
            (inputs(model_filename="m", colour="red"), "init input `colour` is not a parameter of Runner.__init__"),
            (inputs(model_filename=3), "init input `model_filename` must be a string, got int 3"),
            (inputs(model_filename="m", flip=1), "init input `flip` must be a boolean"),
        ]
        for given, message in cases:
            _, w = fresh(Runner)
            e = error(lambda: w.init(given))
            self.assertEqual(e.kind, types.ErrorKind.INVALID_INPUT)
            self.assertIn(message, e.message)

    def test_a_class_without_init_takes_no_inputs(self):
        class Plain:
            def detect(self, item):
                return []

        world, w = fresh(Plain)
        w.init([])
        self.assertEqual(w.detect(item()), [])
        _, w = fresh(Plain)
        self.assertIn("`x` is not a parameter", error(lambda: w.init(inputs(x="1"))).message)

    def test_init_runs_once(self):
        _, w = fresh(Runner)
        w.init(inputs(model_filename="m"))
        self.assertIn("already", error(lambda: w.init(inputs(model_filename="m"))).message)


class Detect(unittest.TestCase):
    def setUp(self):
        _, self.w = fresh(Runner)
        self.w.init(inputs(model_filename="m"))

    def test_boxes_points_and_labels_become_annotations(self):
        box, point, label = self.w.detect(item())
        self.assertEqual(box.geometry, types.Geometry_Bbox(types.Bbox(1.0, 2.0, 3.0, 4.0)))
        self.assertEqual((box.label, box.model.name, box.model.confidence), ("face", "Runner", 0.9))
        self.assertEqual(point.geometry, types.Geometry_Point(types.Point(5.0, 6.0)))
        self.assertEqual(point.model.confidence, 1.0)
        self.assertIsInstance(label.geometry, types.Geometry_Classification)
        self.assertEqual(label.label, "10")  # the item's metadata, parsed

    def test_errors_keep_their_kind_and_other_exceptions_are_internal_with_a_traceback(self):
        e = error(lambda: self.w.detect(item("bad.png")))
        self.assertEqual((e.kind, e.message), (types.ErrorKind.INVALID_ITEM, "not mine"))
        LOGGED.clear()
        e = error(lambda: self.w.detect(item("boom.png")))
        self.assertEqual((e.kind, e.message), (types.ErrorKind.INTERNAL, "ValueError: boom"))
        self.assertTrue(any("Traceback" in m and "in detect" in m for _, m in LOGGED), LOGGED)
        e = error(lambda: self.w.detect(item("odd.png")))
        self.assertIn("must return Box, Point or Label values, got int", e.message)

    def test_detect_before_init_is_not_initialized(self):
        _, w = fresh(Runner)
        self.assertEqual(error(lambda: w.detect(item())).kind, types.ErrorKind.NOT_INITIALIZED)


class Boxes(unittest.TestCase):
    def test_clipped_to_the_image_and_slivers_dropped(self):
        box = Box(-5, 10, 20, 130, "face", 0.5).clipped(100, 120)
        self.assertEqual((box.left, box.top, box.right, box.bottom), (0, 10, 20, 120))
        self.assertIsNone(Box(-5, 0, -1, 10, "face").clipped(100, 100))
        self.assertIsNone(Box(0, 0, 0.5, 1.5, "face").clipped(100, 100))


if __name__ == "__main__":
    unittest.main()
