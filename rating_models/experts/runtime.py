"""How a transformer expert runs its encoder at inference: the runtimes, chosen at load time.

Training always runs the fp32 torch model; a runtime only changes how a trained encoder turns
a padded batch into pooled vectors (B, H). The small head stays in fp32 torch in every runtime.

- "torch": the fp32 model as trained.
- "torch-fp16", "torch-bf16": the encoder under autocast: what a GPU runs, and bf16 what a
  CPU with bf16 matrix units runs (AMX or AVX512-BF16: about twice the fp32 items/s here).
- "onnx": the encoder and its pooling exported to ONNX, fused into ONNX Runtime's BERT ops
  and run by ONNX Runtime on the CPU. Same fp32 arithmetic: the outputs match "torch" to
  about 1e-6. Measured here it rated no faster than "torch" in batches, and one item a call
  faster alone but slower than torch under load from other processes, so it is opt-in.
- "onnx-int8": that graph with its weights quantised to int8 (dynamic quantisation:
  activations are quantised per batch as they come, so an item's outputs also depend a
  little on the other items of its batch). Opt-in: it changes about 2% of the ratings.
- "auto": "torch-fp16" on CUDA; on the CPU "torch-bf16" where it has bf16 matrix units,
  else "torch" (`auto_runtime`).

int8 goes through ONNX Runtime only: `torch.ao.quantization` is deprecated in this torch.

An exported graph depends only on the encoder's weights, its pooling and its inputs, so it is
cached on disk under a digest of them (`cache_dir()`), shared by every expert and bundle with
the same encoder (the two frozen MiniLM experts of the default bundle share one), and built
once per machine: the export takes a few seconds, loading it a fraction of one.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from rating_models.experts.base import ExpertError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "torch-fp16", "torch-bf16", "onnx", "onnx-int8")
CPU_ONLY = ("onnx", "onnx-int8")
# What "auto" runs: the fastest runtime whose ratings stay those of the fp32 model. Of the
# MiniLM expert's ratings of the 1,703 test items, fp16 autocast (tried on the CPU) and "onnx"
# changed none, bf16 autocast one (and no suggested rating of the bundle), int8 about 40
# (bench/inference.py measures speed and agreement).
AUTO = {"cuda": "torch-fp16", "cpu-bf16": "torch-bf16", "cpu": "torch"}
AUTOCAST = {"torch-fp16": torch.float16, "torch-bf16": torch.bfloat16}
CACHE_ENV = "RATING_MODELS_CACHE"
# Bump when what is exported changes (its inputs, outputs or the exporter's settings), so that
# no stale graph is ever read back.
EXPORT_VERSION = "2"
OPSET = 17

Batch = dict[str, Tensor]
Encode = Callable[[Batch], Tensor]  # padded batch -> pooled encodings (B, H), float32


def auto_runtime(device: torch.device) -> str:
    """What "auto" means on `device`."""
    if device.type == "cpu":
        return AUTO["cpu-bf16"] if cpu_has_bf16_units() else AUTO["cpu"]
    return AUTO.get(device.type, "torch")


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AMX tiles or AVX512-BF16).

    Without them bf16 is emulated and slower than fp32.
    """
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def resolve(runtime: str, device: torch.device) -> str:
    """The runtime that `runtime` means on `device` ("auto" picks per device)."""
    if runtime not in RUNTIMES:
        raise ExpertError(f"runtime {runtime!r}: expected one of {RUNTIMES}")
    resolved = auto_runtime(device) if runtime == "auto" else runtime
    if resolved in CPU_ONLY and device.type != "cpu":
        raise ExpertError(
            f"runtime {resolved!r} runs on the CPU only, not on {device.type}; "
            "use 'auto', 'torch', 'torch-fp16' or 'torch-bf16' there"
        )
    return resolved


def encoder_runner(model: nn.Module, runtime: str, device: torch.device, sample: Batch) -> Encode:
    """A function that encodes a padded batch with `model.encode` the way `runtime` says.

    `model` is a classifier with `.encoder` (a transformers model) and `.encode(batch)`;
    `sample` is a padded batch of at least two items of different lengths, used to trace the
    ONNX graph (the padding matters: it makes the attention mask part of the graph).
    """
    runtime = resolve(runtime, device)
    if runtime == "torch":
        return model.encode
    if runtime in AUTOCAST:
        dtype = AUTOCAST[runtime]
        low = _with_linear_weights_in(model, dtype)

        def encode(batch: Batch) -> Tensor:
            with torch.autocast(device.type, dtype=dtype):
                return low.encode(batch).float()  # (B, H)

        return encode
    path = onnx_model(model, sample, int8=runtime == "onnx-int8")
    session = _session(path)
    names = [i.name for i in session.get_inputs()]  # the exporter drops inputs it never reads

    def encode_onnx(batch: Batch) -> Tensor:
        (pooled,) = session.run(None, {name: batch[name].cpu().numpy() for name in names})
        return torch.from_numpy(pooled)  # (B, H)

    return encode_onnx


def _with_linear_weights_in(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of `model` whose linear layers hold their weights in `dtype` already.

    Autocast would cast every fp32 weight again on every call (it caches the casts only of
    weights that need gradients); a copy cast once gives the same arithmetic without that
    cost: measured here, bf16 went from 12 to 7 ms for one item and from 540 to 840 items/s in
    batches. The embedding tables are shared, not copied (autocast leaves them in fp32).
    """
    encoder = model.encoder
    embeddings = encoder.get_input_embeddings()
    low = copy.deepcopy(model, memo={id(embeddings): embeddings}).eval()
    for module in low.modules():
        if isinstance(module, nn.Linear):
            module.to(dtype)
    return low


# -----------------------------------------------------------------------------------------
# ONNX: export, quantise, cache, sessions


class _PooledEncoder(nn.Module):
    """`model.encode` with positional tensor inputs, as the ONNX exporter wants them."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.names = list(names)

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.model.encode(dict(zip(self.names, inputs, strict=True)))  # (B, H)


def cache_dir() -> Path:
    """Where exported graphs are kept: $RATING_MODELS_CACHE, else ~/.cache/rating_models."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rating_models"


def onnx_model(model: nn.Module, sample: Batch, *, int8: bool) -> Path:
    """The cached ONNX file of `model.encode` (fp32, or int8 weights), exported if missing."""
    directory = cache_dir() / "onnx"
    directory.mkdir(parents=True, exist_ok=True)
    names = list(sample)
    key = _digest(model, names)
    fp32 = directory / f"{key}.onnx"
    if not fp32.is_file():
        log.info("exporting the encoder to %s", fp32)
        _write_atomically(fp32, lambda tmp: _export(model, sample, tmp))
    if not int8:
        return fp32
    quantised = directory / f"{key}-int8.onnx"
    if not quantised.is_file():
        log.info("quantising %s to int8", fp32.name)
        _write_atomically(quantised, lambda tmp: _quantise(fp32, tmp))
    return quantised


def _digest(model: nn.Module, names: Sequence[str]) -> str:
    """A digest of everything the exported graph depends on: weights, pooling and inputs."""
    digest = hashlib.sha256()
    pooling = getattr(model, "pooling", "")
    digest.update(f"v{EXPORT_VERSION}|opset{OPSET}|{pooling}|{','.join(names)}".encode())
    for name, tensor in model.encoder.state_dict().items():
        digest.update(f"|{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:32]


def _export(model: nn.Module, sample: Batch, path: Path) -> None:
    """Trace `model.encode` to ONNX; for a BERT encoder, fuse it into ONNX Runtime's BERT ops.

    The trace runs the encoder's eager attention: ONNX Runtime's BERT optimiser recognises
    that pattern (not the traced SDPA one) and fuses each layer into one Attention op, with
    SkipLayerNormalization, BiasGelu and EmbedLayerNormalization around it.
    """
    names = list(sample)
    encoder = model.encoder
    attention = encoder.config._attn_implementation
    wrapper = _PooledEncoder(model, names).eval()
    dynamic = {name: {0: "batch", 1: "tokens"} for name in names}
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        traced = Path(scratch) / "traced.onnx"
        try:
            encoder.set_attn_implementation("eager")
            with warnings.catch_warnings():
                # The TorchScript exporter is chatty (tracer and deprecation warnings); the
                # tests compare its graphs' outputs with the torch model's.
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    wrapper,
                    tuple(sample[name].cpu() for name in names),
                    str(traced),
                    dynamo=False,  # the dynamo exporter needs onnxscript, not installed here
                    input_names=names,
                    output_names=["pooled"],
                    dynamic_axes={**dynamic, "pooled": {0: "batch"}},
                    opset_version=OPSET,
                )
        finally:
            encoder.set_attn_implementation(attention)
            # The exporter puts the wrapper back in the mode it found it in; whatever it did,
            # dropout stays off.
            model.eval()
        if encoder.config.model_type != "bert":
            os.replace(traced, path)  # ONNX Runtime's own graph optimisations still apply
            return
        from onnxruntime.transformers.optimizer import optimize_model

        fused = optimize_model(
            str(traced),
            model_type="bert",
            num_heads=encoder.config.num_attention_heads,
            hidden_size=encoder.config.hidden_size,
        )
        fused.save_model_to_file(str(path))


def _quantise(source: Path, path: Path) -> None:
    """int8 weights, one scale per output channel; activations quantised per batch at run time.

    Per-channel scales with 7-bit weights (`reduce_range`) changed the fewest ratings of the
    fp32 model on the test split among the settings tried (bench/inference.py reports it).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        # Shape inference and graph clean-up first, as the quantiser asks; its symbolic shape
        # inference does not know the fused BERT ops, and the types it cannot infer are float.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            str(prepared),
            str(path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary file in the same folder: concurrent loaders never see half."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".onnx")
    os.close(handle)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Held weakly: a session lives as long as an expert runs it, so a worker that loads bundle
# after bundle keeps only the graphs of the bundles it still holds.
_sessions: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_sessions_lock = threading.Lock()


def _session(path: Path):  # -> onnxruntime.InferenceSession
    """One session per file and thread count in a process: experts sharing an encoder share it.

    ONNX Runtime sessions are safe to run from several threads at once.
    """
    import onnxruntime as ort

    threads = torch.get_num_threads()  # follow the process's torch setting
    key = (path, threads)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3  # errors only
            # Idle threads sleep instead of spinning: the bundle runs torch (the LSTM, the MLP)
            # between calls, and spinning threads would take the cores it needs.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            _sessions[key] = session
        return session
