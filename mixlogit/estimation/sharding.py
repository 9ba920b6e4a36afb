"""Decision makers sharded across devices: the blocked panel likelihood under ``shard_map``.

The unit-blocked layout (:class:`~mixlogit.likelihood.PanelBlocks`) holds the decision makers
in blocks that the likelihood visits one after another. On a one-axis mesh of ``D`` devices
each device holds ``1 / D`` of the blocks (their attributes, availabilities, weights, draws and
covariates) and runs them; the log-likelihood and its gradient are summed across devices
(``psum``, the only communication: ``P + 1`` numbers per evaluation) and each unit's score
stays on its device until the robust covariance gathers them. The same code runs on several
host CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=D``, set before JAX
starts), on several GPUs, or across hosts after ``jax.distributed.initialize()``.

Memory per device: the blocked arrays take ``8 / D`` bytes times
``U (J - 1) T (K + 1) + U R Kr + U (Q + 1)`` (``U`` units padded to whole blocks, ``T`` the
longest panel, ``J`` alternatives, ``K`` coefficients of which ``Kr`` random, ``R`` draws;
shared quadrature nodes are replicated instead), plus one block's working set per device
(about ``BLOCK_ELEMENTS`` times ``K`` doubles, :data:`mixlogit.likelihood.BLOCK_ELEMENTS`)
and the ``(U / D, P)`` scores. The grid layout that the final log-likelihood checks, the
predictions and the conditional coefficients use stays on the default device.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec

from mixlogit.likelihood import Likelihood, LikelihoodData, PanelBlocks

__all__ = ["UNITS_AXIS", "block_bytes_per_device", "device_mesh", "sharded_value_grad_scores"]

#: name of the mesh axis the decision makers are split along
UNITS_AXIS = "units"


def device_mesh(devices: int | Sequence[jax.Device] | None) -> Mesh | None:
    """The one-axis mesh of ``devices``: a count (the first ``devices`` of ``jax.devices()``)
    or the devices themselves; ``None`` keeps the default single device (no mesh).

    Raises:
        ValueError: a count below 1 or above the devices this process sees, a repeated
            device, or an empty sequence. TypeError: anything else.
    """
    if devices is None:
        return None
    available = jax.devices()
    if isinstance(devices, (bool, str)) or not isinstance(devices, (int, np.integer, Sequence)):
        raise TypeError(
            f"devices must be a number of devices or a sequence of jax devices; got {devices!r}"
        )
    if isinstance(devices, (int, np.integer)):
        if not 1 <= devices <= len(available):
            hint = (
                " (several CPU devices: set XLA_FLAGS=--xla_force_host_platform_device_count="
                f"{devices} before JAX starts)"
                if available[0].platform == "cpu"
                else ""
            )
            raise ValueError(
                f"devices={devices}: this process sees {len(available)} "
                f"{available[0].platform} device(s){hint}"
            )
        chosen = list(available[: int(devices)])
    else:
        chosen = list(devices)
        if not chosen:
            raise ValueError("devices is an empty sequence")
        wrong = [d for d in chosen if not isinstance(d, jax.Device)]
        if wrong:
            raise TypeError(f"devices must be jax devices; got {wrong[0]!r}")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"devices repeats a device: {chosen}")
    return Mesh(np.array(chosen), (UNITS_AXIS,))


def _block_specs(shared_nodes: bool) -> PanelBlocks:
    """Partition specs of each field: by unit, except the replicated draw weights and shared
    nodes (the sharding :func:`~mixlogit.likelihood.make_panel_blocks` placed them with)."""
    by_unit, replicated = PartitionSpec(UNITS_AXIS), PartitionSpec()
    return PanelBlocks(
        dX=by_unit,
        available=by_unit,
        standard=replicated if shared_nodes else by_unit,
        unit_weights=by_unit,
        log_draw_weights=replicated,
        covariates=by_unit,
    )


def sharded_value_grad_scores(likelihood: Likelihood, mesh: Mesh, shared_nodes: bool):
    """``(theta, data) -> (value, gradient (P,), unit scores (U, P))`` of
    :meth:`~mixlogit.likelihood.Likelihood.value_grad_scores`, each device evaluating its own
    blocks of ``data.blocks`` as :func:`~mixlogit.likelihood.make_panel_blocks` laid them out
    on ``mesh`` (``shared_nodes``: one set of nodes for every unit, replicated). Jit it at the
    call site.

    The values equal the single-device ones up to the order of the final sums (a few units
    in the last place of the log-likelihood).
    """

    def local(theta, local_blocks):
        # theta is replicated; differentiating a replicated input inside the map would sum
        # each cotangent across devices, mixing the units of different devices in the scores.
        # As a per-device value, each device's pullbacks stay its own (summed once, below).
        theta = lax.pcast(theta, UNITS_AXIS, to="varying")
        values, grads, scores = likelihood.block_terms(theta, local_blocks)
        total = lax.psum(jnp.sum(values), UNITS_AXIS)
        return total, lax.psum(jnp.sum(grads, axis=0), UNITS_AXIS), scores

    mapped = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(PartitionSpec(), _block_specs(shared_nodes)),
        out_specs=(PartitionSpec(), PartitionSpec(), PartitionSpec(UNITS_AXIS)),
    )

    def value_grad_scores(theta, data: LikelihoodData):
        value, grad, scores = mapped(theta, data.blocks)
        return value, grad, scores[: likelihood.num_units]

    return value_grad_scores


def block_bytes_per_device(blocks: PanelBlocks) -> dict[str, int]:
    """Bytes of the blocked arrays held on each device, ``{device: bytes}`` (the measured side
    of the memory bound in this module's docstring)."""
    held: dict[str, int] = {}
    for array in jax.tree.leaves(blocks):
        for shard in array.addressable_shards:
            key = str(shard.device)
            held[key] = held.get(key, 0) + shard.data.nbytes
    return held
