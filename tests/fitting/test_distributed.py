"""Data-parallel ``fit`` under ``torchrun``: 2 gloo ranks on CPU equal one process with the global batch.

One ``torchrun --nproc_per_node=2 --standalone`` launch (about 10 s on 2 cores) runs a script that trains

* a tiny MLP (no dropout, noise or batch norm) for 2 epochs with a per-rank batch of 8 on 53 samples: the
  last global batch of 5 splits 3 / 2, so the per-rank weights 6/5 and 4/5 are needed to match;
* a tiny RGC ConvRNN with ``train_classifier`` for 2 epochs with a per-rank batch of 8 on 33 images: the last
  global batch holds 1 image, so rank 1 joins the all-reduce with a zero-weight stand-in,

and saves each rank's final weights and history. The test then trains the same models in this process with
``fit`` / ``train_classifier`` and batch 16 and compares: weights equal to 1e-6, both ranks bit-identical,
identical histories, one checkpoint (rank 0's) that holds the final weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with the gloo backend is not available", allow_module_level=True)

EPOCHS, PER_RANK_BATCH, WORLD = 2, 8, 2

COMMON = textwrap.dedent("""
    import torch

    from neuromodels.convrnn.model import ConvRNN, LayerSpec


    def mlp_data():
        g = torch.Generator().manual_seed(11)
        x = torch.randn(73, 5, generator=g)
        y = torch.tanh(x @ torch.randn(5, 3, generator=g)) + 0.1 * torch.randn(73, 3, generator=g)
        return (x[:53], y[:53]), (x[53:], y[53:])


    def mlp():
        torch.manual_seed(3)
        return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


    def image_data():
        g = torch.Generator().manual_seed(5)
        x = torch.randn(41, 1, 8, 8, generator=g)
        y = (x.mean((1, 2, 3)) > 0).long() + 2 * (x[:, 0, :4].mean((1, 2)) > 0).long()
        return (x[:33], y[:33]), (x[33:], y[33:])


    def convrnn():
        torch.manual_seed(4)
        return ConvRNN([LayerSpec(3, 3, 2), LayerSpec(4, 3, 1)], cell="rgc", steps=3, image_steps=2,
                       num_classes=4)
""")

RANK_SCRIPT = COMMON + textwrap.dedent("""
    import os
    import sys

    import torch.distributed as dist

    from neuromodels.fitting.classification import train_classifier
    from neuromodels.fitting.loop import fit

    torch.set_num_threads(1)
    out = sys.argv[1]
    train, valid = mlp_data()
    model = mlp()
    # distributed=True: fit initialises the gloo process group from torchrun's environment
    history = fit(model, train, valid, loss="mse", epochs=2, batch_size=8, lr=1e-2, seed=7, patience=None,
                  progress=False, distributed=True, checkpoint_dir=os.path.join(out, "ckpt"))
    rank = dist.get_rank()
    images, images_valid = image_data()
    net = convrnn()
    net_history = train_classifier(net, images, images_valid, epochs=2, lr=3e-3, batch_size=8, seed=2)
    torch.save({"world": dist.get_world_size(), "mlp": model.state_dict(), "history": history.as_dict(),
                "convrnn": net.state_dict(), "convrnn_history": net_history.as_dict()},
               os.path.join(out, f"rank{rank}.pt"))
    dist.barrier()  # both ranks finish writing before either leaves (a rank leaving early aborted its peer once)
    dist.destroy_process_group()
""")


def _single_process(tmp_path):
    namespace: dict = {}
    exec(compile(COMMON, "common", "exec"), namespace)
    from neuromodels.fitting.classification import train_classifier
    from neuromodels.fitting.loop import fit

    train, valid = namespace["mlp_data"]()
    model = namespace["mlp"]()
    history = fit(
        model,
        train,
        valid,
        loss="mse",
        epochs=EPOCHS,
        batch_size=PER_RANK_BATCH * WORLD,
        lr=1e-2,
        seed=7,
        patience=None,
        progress=False,
    )
    images, images_valid = namespace["image_data"]()
    net = namespace["convrnn"]()
    net_history = train_classifier(
        net, images, images_valid, epochs=2, lr=3e-3, batch_size=PER_RANK_BATCH * WORLD, seed=2
    )
    return model, history, net, net_history


def _torchrun(tmp_path, name: str, source: str) -> None:
    """Run ``source`` as a script on WORLD ranks under torchrun (one thread each), with ``tmp_path`` as its argument."""
    script = tmp_path / name
    script.write_text(source)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={WORLD}",
        "--standalone",
        str(script),
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_torchrun_two_ranks_match_single_process_with_global_batch(tmp_path):
    _torchrun(tmp_path, "rank_script.py", RANK_SCRIPT)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert [r["world"] for r in ranks] == [WORLD, WORLD]

    model, history, net, net_history = _single_process(tmp_path)

    # exact between ranks: both start from the same weights and apply the same all-reduced gradient (every rank
    # receives the same reduced bytes) with the same code; against one process only to 1e-6 (other sums)
    for key in ("mlp", "convrnn"):
        for name, value in ranks[0][key].items():
            assert torch.equal(value, ranks[1][key][name]), f"{key}.{name} differs between ranks"
    for name, value in model.state_dict().items():
        torch.testing.assert_close(ranks[0]["mlp"][name], value, rtol=0, atol=1e-6)
    # the ConvRNN: sums over more terms (convolutions over time), same tolerance
    for name, value in net.state_dict().items():
        torch.testing.assert_close(ranks[0]["convrnn"][name], value, rtol=0, atol=1e-6)

    # one history on every rank (seconds included: rank 0's), equal to the single-process numbers
    assert ranks[0]["history"] == ranks[1]["history"]  # exact: all-reduced losses, rank 0's seconds
    assert ranks[0]["convrnn_history"] == ranks[1]["convrnn_history"]
    for key in ("train_loss", "valid_loss", "lr"):
        assert ranks[0]["history"][key] == pytest.approx(history[key], rel=1e-6)
    for key in ("train_loss", "valid_loss", "valid_accuracy"):
        assert ranks[0]["convrnn_history"][key] == pytest.approx(net_history[key], rel=1e-6)
    assert ranks[0]["history"]["best_epoch"] == history.best_epoch

    # only rank 0 wrote the checkpoint (a single file, no leftovers), with unprefixed (non-DDP) keys
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["checkpoint.pt"]
    state = torch.load(tmp_path / "ckpt" / "checkpoint.pt", weights_only=True)
    assert state["settings"]["world_size"] == WORLD and state["epoch"] == EPOCHS
    assert set(state["model"]) == set(model.state_dict())


def test_distributed_true_outside_torchrun_is_a_config_error(monkeypatch):
    from neuromodels.errors import ConfigError
    from neuromodels.fitting.loop import fit

    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    with pytest.raises(ConfigError, match="torchrun"):
        fit(torch.nn.Linear(2, 1), (x, y), epochs=1, loss="mse", progress=False, distributed=True)
    with pytest.raises(ConfigError, match="distributed"):
        fit(torch.nn.Linear(2, 1), (x, y), epochs=1, loss="mse", progress=False, distributed="yes")


DROPOUT_SCRIPT = textwrap.dedent("""
    import os
    import sys

    import torch
    import torch.distributed as dist

    from neuromodels.fitting.loop import fit

    torch.set_num_threads(1)
    out = sys.argv[1]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=g)
    y = x[:, :2] + 0.1 * torch.randn(40, 2, generator=g)


    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Dropout(0.5), torch.nn.Linear(32, 2))


    def masks_of(net):
        masks = []
        net[1].register_forward_hook(lambda m, i, o: masks.append((o == 0).clone()) if m.training else None)
        return masks


    options = dict(loss="mse", batch_size=4, lr=1e-2, seed=3, patience=None, progress=False, distributed=True)
    straight = model()
    masks = masks_of(straight)
    fit(straight, (x, y), epochs=2, **options)
    # the same run, stopped after epoch 1 and resumed from its checkpoint
    resumed = model()
    fit(resumed, (x, y), epochs=1, checkpoint_dir=os.path.join(out, "ckpt"), **options)
    resumed = model()
    fit(resumed, (x, y), epochs=2, checkpoint_dir=os.path.join(out, "ckpt"), **options)
    torch.save({"masks": torch.stack(masks), "straight": straight.state_dict(), "resumed": resumed.state_dict()},
               os.path.join(out, f"dropout{dist.get_rank()}.pt"))
    dist.barrier()  # both ranks finish writing before either leaves (a rank leaving early aborted its peer once)
    dist.destroy_process_group()
""")


def test_dropout_masks_differ_across_ranks_while_weights_stay_in_sync(tmp_path):
    _torchrun(tmp_path, "dropout_script.py", DROPOUT_SCRIPT)
    ranks = [torch.load(tmp_path / f"dropout{r}.pt", weights_only=True) for r in range(WORLD)]
    masks = [r["masks"] for r in ranks]
    assert masks[0].shape == masks[1].shape == (10, 4, 32)  # 40 samples / global batch 8: 5 steps x 2 epochs
    # each rank draws its own masks (rate 0.5: about half the units dropped, and hardly any step alike)
    assert 0.4 < float(masks[0].float().mean()) < 0.6 and 0.4 < float(masks[1].float().mean()) < 0.6
    assert float((masks[0] != masks[1]).float().mean()) > 0.3
    for name, value in ranks[0]["straight"].items():
        assert torch.equal(value, ranks[1]["straight"][name]), f"{name} differs between ranks"
        # resuming restores each rank's own RNG stream: the same weights as the uninterrupted run
        assert torch.equal(value, ranks[0]["resumed"][name]) and torch.equal(value, ranks[1]["resumed"][name])
    from neuromodels.fitting.loop import rank_seed

    assert rank_seed(3, 0) == 3 and len({rank_seed(3, r) for r in range(8)}) == 8
