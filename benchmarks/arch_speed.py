"""Training speed of zoo's nets against torchvision's, the same architecture on the same input.

For each model both nets get the same weights; forward+backward steps are timed alternately
(zoo, torchvision, zoo, ...) in one process so drift in the machine hits both alike, and the
ratio of median step times is printed (zoo images/s divided by torchvision images/s; goal >= 0.98).

    python benchmarks/arch_speed.py                      # CPU: 128x128, batch 8
    python benchmarks/arch_speed.py --size 224 --batch 64 --device cuda
"""

import argparse
import statistics
import time

import torch
import torchvision

import zoo

MODELS = ["resnet18", "resnet50", "vgg16", "densenet121", "googlenet", "alexnet"]


def step_time(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = net(x)
    torch.nn.functional.cross_entropy(out, y).backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare(name: str, size: int, batch: int, rounds: int, device: str) -> tuple[float, float, float]:
    kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    reference = getattr(torchvision.models, name)(weights=None, **kwargs).to(device).train()
    ours = zoo.create_model(name, stem="imagenet").to(device).train()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    for net in (ours, reference):  # warm-up: allocator, kernels, caches
        step_time(net, x, y), step_time(net, x, y)
    times: dict[str, list[float]] = {"zoo": [], "torchvision": []}
    for _ in range(rounds):
        times["zoo"].append(step_time(ours, x, y))
        times["torchvision"].append(step_time(reference, x, y))
    zoo_ips = batch / statistics.median(times["zoo"])
    tv_ips = batch / statistics.median(times["torchvision"])
    return zoo_ips, tv_ips, zoo_ips / tv_ips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated registry names")
    parser.add_argument("--size", type=int, default=128, help="input height and width")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10, help="timed steps per net, alternating")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"device {args.device}, {args.size}x{args.size}, batch {args.batch}, {args.rounds} alternating rounds, "
          f"torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':<12} {'zoo img/s':>10} {'tv img/s':>10} {'ratio':>7}")
    ratios = []
    for name in args.models.split(","):
        zoo_ips, tv_ips, ratio = compare(name, args.size, args.batch, args.rounds, args.device)
        ratios.append(ratio)
        print(f"{name:<12} {zoo_ips:>10.1f} {tv_ips:>10.1f} {ratio:>7.3f}", flush=True)
    print(f"lowest ratio {min(ratios):.3f} (goal >= 0.98)")


if __name__ == "__main__":
    main()
