"""benchmarks/step_traffic.py: kernels, bytes and FLOPs of one search step, counted without a GPU."""

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("step_traffic", ROOT / "benchmarks" / "step_traffic.py")
traffic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(traffic)


def test_convolution_and_matmul_flops_by_hand():
    # depthwise 3x3 on (2, 4, 8, 8): each of the 2*4*8*8 = 512 outputs takes 9 multiply-adds -> 9216 FLOPs
    x, w = torch.randn(2, 4, 8, 8), torch.randn(4, 1, 3, 3)
    out = torch.nn.functional.conv2d(x, w, padding=1, groups=4)
    assert traffic._flops("convolution", (x, w), out) == 2 * 512 * 9
    # its backward for the input and the weight: the forward's cost twice; only the weight: once
    assert traffic._flops("convolution_backward", (out, x, w, None, 1, 1, 1, False, 0, 4, (True, True, False)),
                          None) == 2 * 2 * 512 * 9
    assert traffic._flops("convolution_backward", (out, x, w, None, 1, 1, 1, False, 0, 4, (False, True, False)),
                          None) == 2 * 512 * 9
    # a dense 1x1 16 -> 16 on (1, 16, 4, 4): 16 outputs channels x 16 pixels x 16 inputs
    x, w = torch.randn(1, 16, 4, 4), torch.randn(16, 16, 1, 1)
    assert traffic._flops("convolution", (x, w), torch.nn.functional.conv2d(x, w)) == 2 * 16 * 16 * 16
    a, b = torch.randn(3, 5, 7), torch.randn(3, 7, 2)
    assert traffic._flops("bmm", (a, b), None) == 2 * 3 * 5 * 7 * 2
    assert traffic._flops("add", (a, a), None) == 0


def test_a_step_is_counted_on_the_meta_device(tmp_path):
    out = traffic.main(["--method", "darts", "--space", "nb201", "--batch", "2", "--channels", "4", "--layers", "1",
                        "--modes", "eager", "fast", "--json", str(tmp_path / "t.json")])
    eager, fast = out["modes"]["eager"], out["modes"]["fast"]
    assert eager["device_counted_on"] == fast["device_counted_on"] == "meta"
    assert fast["kernels"] < eager["kernels"]  # the fused cell's point
    assert all(m["gflops"] > 0 and m["gb_written"] > 0 for m in (eager, fast))
    assert (tmp_path / "t.json").exists()


def test_only_operators_that_launch_a_kernel_are_counted():
    import search_step  # on sys.path: step_traffic puts the benchmarks folder there

    a = torch.randn(3, 4, 5)
    # matmul of a 3-D by a 2-D tensor is one mm on the flattened rows; the reshapes around it are aliases
    assert search_step._count_ops(lambda: torch.matmul(a, torch.randn(5, 2)))["non_view"] == 2  # randn + mm
    # reshaping a transposed tensor copies once (clone); the alias that follows is not a kernel
    t = a.transpose(0, 1)
    assert search_step._count_ops(lambda: t.reshape(-1))["non_view"] == 1
    # an allocation alone launches nothing; zeros fills, so it does
    assert search_step._count_ops(lambda: a.new_empty(4))["non_view"] == 0
    assert search_step._count_ops(lambda: a.new_zeros(4))["non_view"] == 1


def test_as_captured_counts_sample_group_batch_norm_block_by_block(tmp_path):
    from harness.nn import groups

    args = ["--method", "rome-v2", "--space", "nb201", "--batch", "2", "--channels", "4", "--layers", "1",
            "--modes", "fast"]
    plain = traffic.main(args)["modes"]["fast"]
    captured = traffic.main(args + ["--as-captured"])["modes"]["fast"]
    assert not groups.capturing(torch.zeros(1))  # the script leaves the process as it found it
    # K = 7 samples per BatchNorm: side by side 15 kernels and two copies of the activations each way,
    # block by block 4 x 7 + 1 = 29 kernels and no copies
    assert captured["kernels"] > plain["kernels"]
    assert captured["gb_read"] + captured["gb_written"] < plain["gb_read"] + plain["gb_written"]
