#!/usr/bin/env python3
"""The built-in models of `convsvd --model` in PyTorch, with the same
state_dict names, and the step-for-step reference the tests compare with.

Not run in CI (it needs `pip install torch safetensors numpy`; the CPU wheel
`torch==2.13.0+cpu` is enough). The test suite needs no PyTorch: it reads the
fixture this script writes.

    scripts/pytorch_models.py describe MODEL [CHANNELS]
        prints every state_dict tensor with its shape and the learned
        parameter count (resnet8 on 1 channel: 77,754).
    scripts/pytorch_models.py check-export FILE MODEL [CHANNELS]
        a strict load of FILE (`convsvd export --weights-only`, or a
        checkpoint's model tensors) into MODEL: exit 0 when it loads. MODEL
        is a built-in name or a model file (e.g. `convsvd compress`'s
        model.json).
    scripts/pytorch_models.py time-epoch MODEL [DATA_DIR [IMAGES [DATASET [BATCH]]]]
        one training epoch of MODEL with convsvd's ResNet recipe (a random
        crop and flip per batch rather than per image), 2 threads, on
        Fashion-MNIST (default) or the IDX files of DATA_DIR (the first
        IMAGES training images when given; DATASET mnist or fashion-mnist
        picks the normalisation, else a DATA_DIR naming "fashion" does;
        BATCH images a step, default the recipe's 128):
        the time to compare with `convsvd train --model MODEL --epochs 1`
        (`convsvd bench --model MODEL --pytorch` runs it).
    scripts/pytorch_models.py train-recipe MODEL EPOCHS [DATA_DIR [DATASET [SEED [THREADS]]]]
        EPOCHS epochs of convsvd's ResNet recipe (SGD Nesterov 0.9, weight
        decay 5e-4, batch 128, one-cycle to 0.2 over the whole run, a random
        crop from 2-pixel zero padding and a flip with probability 1/2 per
        image, as `convsvd train --augment crop+flip` does) from PyTorch's
        default initialisation with SEED (default 0), THREADS threads
        (default 2); prints each epoch's seconds, loss and test accuracy: the
        recipe's accuracy in another framework, to set beside `convsvd train
        --model MODEL --dataset DATASET --epochs EPOCHS`.
    scripts/pytorch_models.py sgd-reference OUT_DIR [FASHION_MNIST_DIR]
        resnet8 on 1×28×28, PyTorch's default initialisation with seed 0,
        then 10 SGD steps (momentum 0.9, weight decay 5e-4, lr 0.05, no
        Nesterov) of batch 128, in float64, on the first 1,280 Fashion-MNIST
        training images in file order, normalised (x/255 − 0.2860)/0.3530, no
        augmentation, train mode. Writes OUT_DIR/resnet8-initial.safetensors,
        OUT_DIR/resnet8-after-1-sgd-step.safetensors and
        OUT_DIR/resnet8-after-10-sgd-steps.safetensors (the state_dicts,
        running statistics and num_batches_tracked included), and
        OUT_DIR/resnet8-float32-spread.json: per tensor, how far PyTorch's own
        float32 run ends from the float64 one, relative to the tensor's
        largest magnitude.
"""
import gzip
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyConvNet(nn.Module):
    """conv1 (1→8, 3×3) → ReLU → max-pool 2 → conv2 (8→16) → ReLU → max-pool 2 → fc (400→10)."""

    def __init__(self, channels=1, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 3, bias=False)
        self.conv2 = nn.Conv2d(8, 16, 3, bias=False)
        self.fc = nn.Linear(400, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return self.fc(F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1))


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv3×3-BN-ReLU-conv3×3-BN, plus the shortcut, ReLU."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class CIFARResNet(nn.Module):
    """He et al. 2016 §4.2: 16-channel stem, three stages of n blocks (16, 32, 64), depth 6n + 2."""

    def __init__(self, blocks, channels=1, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        inplanes = 16
        for stage, planes in enumerate([16, 32, 64], start=1):
            layers = []
            for b in range(blocks):
                stride = 2 if stage > 1 and b == 0 else 1
                layers.append(BasicBlock(inplanes, planes, stride))
                inplanes = planes
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


class ModelFileNet(nn.Module):
    """A `convsvd` model file (docs/model-format.md) as a module with the same
    state_dict names: a dotted layer name ("conv2.0", "layer1.0.conv1.1") is
    the nested modules it names, as `convsvd compress` writes them."""

    def __init__(self, spec):
        super().__init__()
        self.program = self._compile(spec["layers"], prefix="", default="")

    def _register(self, path, module):
        parent = self
        parts = path.split(".")
        for part in parts[:-1]:
            if part not in parent._modules:
                parent.add_module(part, nn.Module())
            parent = parent._modules[part]
        parent.add_module(parts[-1], module)
        return module

    def _compile(self, layers, prefix, default):
        program = []
        for index, layer in enumerate(layers):
            local = layer.get("name", f"{default}{index}")
            path = f"{prefix}.{local}" if prefix else local
            kind = layer["type"]
            if kind == "conv":
                module = nn.Conv2d(layer["in"], layer["out"], layer["kernel"], layer.get("stride", 1),
                                   layer.get("padding", 0), bias=layer.get("bias", True))
                program.append(self._register(path, module))
            elif kind == "batchnorm":
                program.append(self._register(path, nn.BatchNorm2d(layer["channels"])))
            elif kind == "linear":
                program.append(self._register(path, nn.Linear(layer["in"], layer["out"], bias=layer.get("bias", True))))
            elif kind == "relu":
                program.append(F.relu)
            elif kind == "maxpool2":
                program.append(lambda x: F.max_pool2d(x, 2))
            elif kind == "global_avgpool":
                program.append(lambda x: F.adaptive_avg_pool2d(x, 1))
            elif kind == "flatten":
                program.append(lambda x: x.flatten(1))
            elif kind == "residual":
                body = self._compile(layer["body"], path, "")
                shortcut = layer.get("shortcut", "identity")
                projection = None if shortcut == "identity" else self._compile(shortcut, path, "downsample.")
                program.append(("residual", body, projection, layer.get("relu", True)))
            else:
                sys.exit(f"unknown layer type {kind} at {path}")
        return program

    @staticmethod
    def _run(program, x):
        for step in program:
            if isinstance(step, tuple):
                _, body, projection, relu = step
                y = ModelFileNet._run(body, x) + (x if projection is None else ModelFileNet._run(projection, x))
                x = F.relu(y) if relu else y
            else:
                x = step(x)
        return x

    def forward(self, x):
        return self._run(self.program, x)


def build(name, channels=1, classes=10):
    if name.endswith(".json"):
        import json

        with open(name) as f:
            return ModelFileNet(json.load(f))
    if name == "tiny":
        return TinyConvNet(channels, classes)
    blocks = {"resnet8": 1, "resnet20": 3, "resnet32": 5}
    if name not in blocks:
        sys.exit(f"unknown model {name}: tiny, resnet8, resnet20, resnet32")
    return CIFARResNet(blocks[name], channels, classes)


def idx(path):
    """An IDX file (gzip'd or not) as a numpy array of unsigned bytes."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def state_for_file(model):
    """The state_dict as safetensors stores it: float32 tensors, int64 num_batches_tracked scalars."""
    return {
        k: (v.detach().float() if v.is_floating_point() else v.detach()).contiguous()
        for k, v in model.state_dict().items()
    }


def sgd_reference(out_dir, data_dir):
    import json

    from safetensors.torch import save_file

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    initial = build("resnet8").train()
    os.makedirs(out_dir, exist_ok=True)
    save_file(state_for_file(initial), os.path.join(out_dir, "resnet8-initial.safetensors"))
    images = idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))[:1280]
    labels = idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))[:1280]
    x = ((torch.from_numpy(images.astype(np.float32)) / 255 - 0.2860) / 0.3530).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))

    def train(dtype, steps):
        model = build("resnet8").train().to(dtype)
        model.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in initial.state_dict().items()})
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        states = []
        for step in range(steps):
            batch = slice(128 * step, 128 * (step + 1))
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[batch].to(dtype)), y[batch])
            loss.backward()
            optimizer.step()
            print(f"{dtype} step {step + 1}: loss {loss.item():.6f}")
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return states

    # The reference runs in float64. PyTorch's own float32 run is kept only
    # as the measure of what float32 rounding does over ten steps of this
    # network: its distance from float64 per tensor (spread.json), which the
    # test allows convsvd's float32 run too (twice over).
    exact, single = train(torch.float64, 10), train(torch.float32, 10)
    save_file(
        {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in exact[0].items()},
        os.path.join(out_dir, "resnet8-after-1-sgd-step.safetensors"))
    save_file(
        {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in exact[9].items()},
        os.path.join(out_dir, "resnet8-after-10-sgd-steps.safetensors"))
    spread = {
        k: float((single[9][k].double() - v).abs().max() / v.abs().max().clamp_min(1e-30))
        for k, v in exact[9].items() if v.is_floating_point()
    }
    with open(os.path.join(out_dir, "resnet8-float32-spread.json"), "w") as f:
        json.dump(spread, f, indent=1, sort_keys=True)


def time_epoch(name, data_dir, mean, std, images=None, batch_size=128):
    """One training epoch of the ResNet recipe (SGD Nesterov 0.9, weight decay 5e-4, batch 128,
    one-cycle to 0.2, random crop from 2-pixel padding and flip), 2 threads: seconds and accuracy."""
    import time

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build(name).train()
    x = idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    y = torch.from_numpy(idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz")).astype(np.int64))
    if images is not None:
        x, y = x[:images], y[:images]
    x = ((torch.from_numpy(x.astype(np.float32)) / 255 - mean) / std).unsqueeze(1)
    background = (0 - mean) / std
    steps = (len(y) + batch_size - 1) // batch_size
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4)
    warm = int(np.ceil(0.3 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: (t + 1) / warm if t < warm else 0.5 * (1 + np.cos(np.pi * (t - warm) / (steps - warm))))
    order = torch.randperm(len(y))
    start = time.perf_counter()
    for step in range(steps):
        batch = order[batch_size * step:batch_size * (step + 1)]
        images = F.pad(x[batch], (2, 2, 2, 2), value=background)
        dy, dx = np.random.randint(0, 5, 2)
        images = images[:, :, dy:dy + 28, dx:dx + 28]
        if np.random.rand() < 0.5:
            images = images.flip(3)
        optimizer.zero_grad()
        F.cross_entropy(model(images), y[batch]).backward()
        optimizer.step()
        schedule.step()
    seconds = time.perf_counter() - start
    model.eval()
    tx = idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"))
    ty = torch.from_numpy(idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    tx = ((torch.from_numpy(tx.astype(np.float32)) / 255 - mean) / std).unsqueeze(1)
    with torch.no_grad():
        correct = sum(int((model(tx[i:i + 500]).argmax(1) == ty[i:i + 500]).sum()) for i in range(0, len(ty), 500))
    print(f"{name}: one epoch {seconds:.2f} s ({len(y) / seconds:.0f} images/s), test accuracy {100 * correct / len(ty):.2f}%")


def train_recipe(name, data_dir, mean, std, epochs, seed=0, threads=2, batch_size=128):
    """The recipe over `epochs` epochs with per-image augmentation; one line per epoch."""
    import time

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build(name)
    x = idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    y = torch.from_numpy(idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz")).astype(np.int64))
    x = ((torch.from_numpy(x.astype(np.float32)) / 255 - mean) / std).unsqueeze(1)
    padded = F.pad(x, (2, 2, 2, 2), value=(0 - mean) / std)  # black pixels, as convsvd's crop pads
    tx = idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"))
    ty = torch.from_numpy(idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    tx = ((torch.from_numpy(tx.astype(np.float32)) / 255 - mean) / std).unsqueeze(1)
    steps_per_epoch = (len(y) + batch_size - 1) // batch_size
    total = epochs * steps_per_epoch
    warm = int(np.ceil(0.3 * total))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: (t + 1) / warm if t < warm else 0.5 * (1 + np.cos(np.pi * (t - warm) / (total - warm))))
    rows = torch.arange(28)
    for epoch in range(epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(y)))
        start = time.perf_counter()
        loss_sum = 0.0
        for step in range(steps_per_epoch):
            batch = order[batch_size * step:batch_size * (step + 1)]
            n = len(batch)
            dy = torch.from_numpy(rng.integers(0, 5, n))
            dx = torch.from_numpy(rng.integers(0, 5, n))
            ri = (dy[:, None] + rows[None, :])[:, None, :, None].expand(n, 1, 28, 32)
            images = torch.gather(padded[batch], 2, ri)
            ci = (dx[:, None] + rows[None, :])[:, None, None, :].expand(n, 1, 28, 28)
            images = torch.gather(images, 3, ci)
            flip = torch.from_numpy(rng.random(n) < 0.5)
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), y[batch])
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += float(loss.detach()) * n
        seconds = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            correct = sum(
                int((model(tx[i:i + 500]).argmax(1) == ty[i:i + 500]).sum()) for i in range(0, len(ty), 500))
        print(f"{name} epoch {epoch + 1}/{epochs}: {seconds:.1f} s, loss {loss_sum / len(y):.4f}, "
              f"test accuracy {100 * correct / len(ty):.2f}%", flush=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    command = sys.argv[1]
    if command == "describe":
        model = build(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
        for name, tensor in model.state_dict().items():
            print(f"{name:40s} {list(tensor.shape)}")
        print("learned parameters:", sum(p.numel() for p in model.parameters()))
    elif command == "check-export":
        from safetensors.torch import load_file

        model = build(sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1)
        model.load_state_dict(load_file(sys.argv[2]), strict=True)
        print(f"{sys.argv[2]}: loads into {sys.argv[3]} with strict=True")
    elif command == "time-epoch":
        data = sys.argv[3] if len(sys.argv) > 3 else "/usr/share/datasets/fashion-mnist"
        images = int(sys.argv[4]) if len(sys.argv) > 4 else None
        fashion = sys.argv[5] == "fashion-mnist" if len(sys.argv) > 5 else "fashion" in data
        mean, std = (0.2860, 0.3530) if fashion else (0.1307, 0.3081)
        batch_size = int(sys.argv[6]) if len(sys.argv) > 6 else 128
        time_epoch(sys.argv[2], data, mean, std, images, batch_size)
    elif command == "train-recipe":
        epochs = int(sys.argv[3])
        data = sys.argv[4] if len(sys.argv) > 4 else "/usr/share/datasets/fashion-mnist"
        fashion = sys.argv[5] == "fashion-mnist" if len(sys.argv) > 5 else "fashion" in data
        mean, std = (0.2860, 0.3530) if fashion else (0.1307, 0.3081)
        seed = int(sys.argv[6]) if len(sys.argv) > 6 else 0
        threads = int(sys.argv[7]) if len(sys.argv) > 7 else 2
        train_recipe(sys.argv[2], data, mean, std, epochs, seed, threads)
    elif command == "sgd-reference":
        data = sys.argv[3] if len(sys.argv) > 3 else "/usr/share/datasets/fashion-mnist"
        sgd_reference(sys.argv[2], data)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
