"""{{name}}: a Prelabel detector in Python.

It labels each image `bright` or `dark` from its mean brightness, which the host's image
service computes from a 32x32 copy: replace `detect` with your model's work. To run an ONNX
model, list it under `[[artifacts]]` in prelabel.toml and use `prelabel.Network(name)` (the
deployer grants it with `--allow-inference`); `guest/python-face-detector` in Prelabel's
repository is a whole example.

Build and try it:  prelabel detect . photo.jpg   (this runs the manifest's `build` first)
"""

import prelabel
from prelabel import Label


class Detector:
    model_name = "{{name}}"
    model_version = "0.1.0"

    def __init__(self, threshold: float = 0.5):
        # Init inputs arrive by name, typed as prelabel.toml declares them.
        if not 0.0 <= threshold <= 1.0:
            raise prelabel.InvalidInput(f"threshold must be within 0..1, got {threshold}")
        self.threshold = threshold

    def detect(self, item: prelabel.Item) -> list:
        # The host decodes the item and resizes it (OpenCV's INTER_LINEAR) to 32x32, RGB, 0..1.
        (width, height), small = prelabel.blob(item.data, (32, 32), scale=1 / 255)
        values = small.values
        brightness = sum(values) / len(values)
        print(f"{item.name}: {width}x{height}, brightness {brightness:.3f}")
        if brightness >= self.threshold:
            return [Label("bright", confidence=brightness)]
        return [Label("dark", confidence=1.0 - brightness)]


# The component's exports: init and detect, mapped onto the class above.
WitWorld = prelabel.world(Detector)
