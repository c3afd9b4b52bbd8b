"""The seed tutorial's face detector, in Python on Prelabel: its ServiceRunner, with the
host decoding the image (`prelabel.blob`) and running the network (`prelabel.Network`).

OpenCV's `net.forward()` runs the Caffe model's last layer, DetectionOutput, inside OpenCV;
the ONNX model stops before it, so `detection_output` below is that layer, in Python.
"""

import prelabel
from prelabel import Box

# The res10 prototxt's detection_output_param.
CONFIDENCE_THRESHOLD = 0.01
TOP_K = 400
NMS_THRESHOLD = 0.45
KEEP_TOP_K = 200


class ServiceRunner:
    model_name = "res10_300x300_ssd"
    model_version = "0.1.0"

    def __init__(self, model_filename: str, min_confidence: float, label: str = "face"):
        print("[INFO] loading model...")
        self.net = prelabel.Network(model_filename)
        self.min_confidence = min_confidence
        self.label = label

    def detect(self, item: prelabel.Item) -> list[Box]:
        # load the input image and construct an input blob for the image
        # by resizing to a fixed 300x300 pixels and then normalizing it
        (w, h), blob = prelabel.blob(item.data, (300, 300), mean=(104.0, 177.0, 123.0), bgr=True)
        # pass the blob through the network and obtain the detections and
        # predictions
        outputs = self.net.run({"data": blob})
        detections = detection_output(outputs["boxes"].values, outputs["scores"].values)
        boxes = []
        # loop over the detections
        for (x1, y1, x2, y2), confidence in detections:
            # filter out weak detections by ensuring the `confidence` is
            # greater than the minimum confidence
            if confidence > self.min_confidence:
                # compute the (x, y)-coordinates of the bounding box for the object
                box = Box(x1 * w, y1 * h, x2 * w, y2 * h, self.label, confidence).clipped(w, h)
                if box is not None:
                    boxes.append(box)
        return boxes


def detection_output(boxes, scores):
    """Caffe's DetectionOutput on decoded boxes: scores over the threshold, best first (ties
    in the network's order), top-k, greedy NMS, keep-top-k. Returns ((x1, y1, x2, y2), score)."""
    order = sorted(
        (i for i in range(len(scores)) if scores[i] > CONFIDENCE_THRESHOLD),
        key=lambda i: -scores[i],
    )[:TOP_K]
    kept = []
    for i in order:
        candidate = tuple(boxes[4 * i : 4 * i + 4])
        if all(iou(candidate, other) <= NMS_THRESHOLD for other, _ in kept):
            kept.append((candidate, scores[i]))
            if len(kept) == KEEP_TOP_K:
                break
    return kept


def iou(a, b):
    """Caffe's JaccardOverlap: no +1 on sizes; disjoint boxes overlap 0."""
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return 0.0
    inter = area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def area(b):
    if b[2] < b[0] or b[3] < b[1]:
        return 0.0
    return (b[2] - b[0]) * (b[3] - b[1])


WitWorld = prelabel.world(ServiceRunner)
