"""scikit-learn's classic classifiers on the same split zoo's leaderboard uses, for the page's baselines.

    python benchmarks/sklearn_baselines.py --data fashion_mnist --out benchmarks/results/fashion_mnist

Each estimator fits the training images zoo trains on (the 55,000 left after the 5,000-image validation
split, pixels scaled to 0..1, flattened) and is scored on the 10,000 test images. The estimators follow
Fashion-MNIST's own scikit-learn benchmark: logistic regression, k nearest neighbours (k=5, L1, weighted
by distance), and an RBF SVC (C=10). The SVC fits on 50 principal components: on all 784 pixels libsvm
needs hours on 2 cores. Writes sklearn.csv (top-1 %, fit and predict seconds) into --out.
"""

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

import zoo

ESTIMATORS = {
    "LogisticRegression(C=1)": lambda: LogisticRegression(C=1.0, max_iter=200),
    "KNeighborsClassifier(k=5, p=1, distance)": lambda: KNeighborsClassifier(5, p=1, weights="distance"),
    "PCA(50) + SVC(rbf, C=10)": lambda: make_pipeline(PCA(50, random_state=0), SVC(C=10.0, kernel="rbf")),
}


def arrays(data: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """zoo's training and test images of `data` as 0..1 pixel rows, with labels."""
    dm = zoo.data.create(data)
    dm.setup()

    def rows(split):  # images as stored (uint8 0..255 or float 0..1), to 0..1
        images = split.images.numpy()
        scale = 255.0 if images.dtype == np.uint8 else 1.0
        return (images.reshape(len(images), -1) / scale).astype(np.float32), split.labels.numpy()

    return (*rows(dm.train_set), *rows(dm.test_set))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="fashion_mnist")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", help="one estimator's name (default: all)")
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = arrays(args.data)
    print(f"{args.data}: {len(x_train)} training, {len(x_test)} test images", flush=True)
    rows = []
    for name, make in ESTIMATORS.items():
        if args.only and args.only != name:
            continue
        estimator = make()
        start = time.perf_counter()
        estimator.fit(x_train, y_train)
        fitted = time.perf_counter()
        top1 = 100 * float((estimator.predict(x_test) == y_test).mean())
        rows.append({"estimator": name, "top1": round(top1, 2), "fit_s": round(fitted - start, 1),
                     "predict_s": round(time.perf_counter() - fitted, 1), "train_images": len(x_train)})
        print(f"{name}: {top1:.2f} % ({rows[-1]['fit_s']} s fit, {rows[-1]['predict_s']} s predict)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "sklearn.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
