"""zoo's CAM methods against pytorch-grad-cam's, seconds per image on the same net, layer and images, in one run.

For each model (zoo's Fashion-MNIST weights, its test images at the weights' size; a ViT at random, since zoo ships
no transformer weights) and each method both have, the maps of --n images are computed by
``zoo.cam.compute_cam`` and by pytorch-grad-cam (``GradCAM(model, target_layers=[layer])(x, targets)``,
its default batch sizes), each once untimed, then alternately, each timed call after a pause of 0.2 s, best of
--rounds. Prints seconds per image and the ratio pytorch-grad-cam / zoo (above 1: zoo is faster), and writes the
table as JSON.

    python benchmarks/cam_speed.py                      # resnet20, lenet5, densenet_bc40_s, a ViT; a few minutes
"""

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import zoo
from zoo.cam import compute_cam, transformer_layer

# before each timed call: the threads a library leaves spinning after its call (OpenBLAS's, OpenCV's) take the cores
# from whatever runs next; a torch forward of ResNet-20 on 64 images right after pytorch-grad-cam's EigenCAM took
# 112-122 ms against 21.5 ms alone, 0.2 s later as alone. Timing the two in turn without a pause charged each with
# the other's leftovers (zoo's EigenCAM 112 ms in turn, 46 ms alone).
PAUSE = 0.2

REFERENCE = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "hirescam": "HiResCAM", "xgradcam": "XGradCAM",
             "layercam": "LayerCAM", "gradcamelementwise": "GradCAMElementWise", "eigencam": "EigenCAM",
             "eigengradcam": "EigenGradCAM", "scorecam": "ScoreCAM", "ablationcam": "AblationCAM"}


def setup(name: str, n: int) -> tuple[torch.nn.Module, torch.Tensor, list[int], torch.nn.Module, object, bool]:
    """The net, images, targets, the layer pytorch-grad-cam reads, its reshape transform, and whether a ViT."""
    if name.startswith("timm/vit"):
        torch.manual_seed(0)
        net = zoo.create_model(name, num_classes=10, image_size=64).eval()
        x = torch.randn(n, 3, 64, 64)
        def reshape(t: torch.Tensor) -> torch.Tensor:  # pytorch-grad-cam's ViT example: the class token dropped
            return t[:, 1:].reshape(t.size(0), 4, 4, t.size(2)).permute(0, 3, 1, 2)

        return net, x, torch.randint(0, 10, (n,)).tolist(), net.get_submodule(transformer_layer(net)), reshape, True
    model = zoo.create(name, weights="zoo:fashion_mnist").eval()
    x, y = zoo.data.create("fashion_mnist", image_size=model.hparams.image_size).normalized("test", n)
    return model.net, x, y.tolist(), model.net.get_submodule(zoo.model_info(name).cam_layer), None, False


def main() -> None:
    import pytorch_grad_cam
    from pytorch_grad_cam.ablation_layer import AblationLayerVit
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet20,lenet5,densenet_bc40_s,timm/vit_tiny_patch16_224")
    parser.add_argument("--methods", default=",".join(REFERENCE))
    parser.add_argument("--n", type=int, default=64, help="images (default: 64)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/cam/speed.json")
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        net, x, targets, layer, reshape, vit = setup(name, args.n)
        for method in args.methods.split(","):
            options = {"ablation_layer": AblationLayerVit()} if method == "ablationcam" and vit else {}
            reference = getattr(pytorch_grad_cam, REFERENCE[method])(model=net, target_layers=[layer],
                                                                      reshape_transform=reshape, **options)
            wanted = [ClassifierOutputTarget(t) for t in targets]
            compute_cam(net, x, targets, method)  # untimed: the first call of a net pays for allocations
            reference(input_tensor=x, targets=wanted)
            ours, theirs = [], []
            for _ in range(args.rounds):
                time.sleep(PAUSE)
                start = time.perf_counter()
                compute_cam(net, x, targets, method)
                ours.append(time.perf_counter() - start)
                time.sleep(PAUSE)
                start = time.perf_counter()
                reference(input_tensor=x, targets=wanted)
                theirs.append(time.perf_counter() - start)
            row = {"model": name, "method": method, "zoo_s_per_image": min(ours) / len(x),
                   "grad_cam_s_per_image": min(theirs) / len(x), "ratio": min(theirs) / min(ours)}
            rows.append(row)
            print(f"{name:28s} {method:20s} zoo {row['zoo_s_per_image'] * 1000:9.3f} ms/image   pytorch-grad-cam "
                  f"{row['grad_cam_s_per_image'] * 1000:9.3f} ms/image   ratio {row['ratio']:6.2f}", flush=True)
    from importlib.metadata import version

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "cpu": Path("/proc/cpuinfo").read_text().split("model name")[1].split("\n")[0].strip(": ")
        if Path("/proc/cpuinfo").is_file() else platform.processor(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "grad_cam": version("grad-cam"),
        "images": args.n, "rounds": args.rounds, "rows": rows}, indent=1))
    print(f"slowest ratio: {min(r['ratio'] for r in rows):.2f} -> {args.out}")


if __name__ == "__main__":
    main()
