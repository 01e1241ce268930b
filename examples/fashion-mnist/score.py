#!/usr/bin/python3
"""Accuracy of batch predictions against the test labels.

    /usr/bin/python3 score.py PREDICTIONS.h5 DATA.h5     prints the accuracy, e.g. 0.8312

PREDICTIONS.h5 is `cohort serve predict`'s output over DATA.h5's test/images (dataset
`predictions`, one row of 10 logits per image, in the images' order).
"""
import sys

import h5py
import numpy as np


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    with h5py.File(sys.argv[1], "r") as p, h5py.File(sys.argv[2], "r") as d:
        logits, labels = p["predictions"][...], d["test/labels"][...]
    if len(logits) != len(labels):
        sys.exit(f"score: {len(logits)} predictions for {len(labels)} test images")
    print(f"{float((logits.argmax(1) == labels).mean()):.4f}")


if __name__ == "__main__":
    main()
