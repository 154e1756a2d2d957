"""Makes tiny_convnet_fixture.json: a deterministic TinyConvNet for AnalysisTests.

conv1 and conv2 are random (PyTorch's default bound 1/sqrt(fan_in), numpy seed
20261129); fc (and its bias) is the ridge-regression readout of the pooled conv2
features of the first 10,000 MNIST training images onto one-hot labels, so that
the fixture classifies MNIST far above chance and the accuracy-vs-rank sweep
means something. Values are rounded to float32.

Run: python3 make_fixture.py /path/to/mnist  (numpy only)
"""
import gzip, json, sys
import numpy as np

def idx(path):
    data = gzip.open(path).read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)

def conv(x, w):  # x (N,C,H,W), w (O,C,3,3) -> (N,O,H-2,W-2), unpadded
    n, c, h, wd = x.shape
    out = np.zeros((n, w.shape[0], h - 2, wd - 2))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", x[:, :, i:i + h - 2, j:j + wd - 2], w[:, :, i, j])
    return out

def pool(x):
    n, c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, :, :2 * h2, :2 * w2].reshape(n, c, h2, 2, w2, 2).max(axis=(3, 5))

rng = np.random.default_rng(20261129)
conv1 = rng.uniform(-1 / 3, 1 / 3, (8, 1, 3, 3)).astype(np.float32)
conv2 = rng.uniform(-1 / np.sqrt(72), 1 / np.sqrt(72), (16, 8, 3, 3)).astype(np.float32)

mnist = sys.argv[1]
images = idx(f"{mnist}/train-images-idx3-ubyte.gz")[:10000].astype(np.float64)
labels = idx(f"{mnist}/train-labels-idx1-ubyte.gz")[:10000]
x = ((images / 255 - 0.1307) / 0.3081)[:, None]
h = pool(np.maximum(conv(pool(np.maximum(conv(x, conv1.astype(np.float64)), 0)), conv2.astype(np.float64)), 0))
features = np.concatenate([h.reshape(len(h), 400), np.ones((len(h), 1))], axis=1)
targets = np.eye(10)[labels]
solution = np.linalg.solve(features.T @ features + 1.0 * np.eye(401), features.T @ targets)
fc_weight = solution[:400].T.astype(np.float32)
fc_bias = solution[400].astype(np.float32)

def floats(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]

json.dump({"conv1.weight": floats(conv1), "conv2.weight": floats(conv2),
           "fc.weight": floats(fc_weight), "fc.bias": floats(fc_bias)},
          open("tiny_convnet_fixture.json", "w"))
