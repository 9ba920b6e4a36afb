"""Decision makers split between devices (``fit(devices=...)``, ``estimation/sharding.py``).

Two host CPU devices need ``XLA_FLAGS`` before JAX starts, so the two-device fits run in a
child process; it fits a panel mixed logit with mixing covariates (every per-unit field of the
blocked layout is split) and an odd number of blocks (one padding block), on data drawn with
a seed used nowhere else, and compares with the one-device fit of the same process.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from mixlogit import MixedLogit
from mixlogit.estimation.sharding import device_mesh
from mixlogit.simulate import simulate_choices

MODEL = MixedLogit(["ASC_1"], {"x1": "normal", "price": "-lognormal"}, mean_covariates={"x1": "z"})
TRUTH = {"ASC_1": 0.4, "x1": 1.0, "x1:z": 0.5, "sd.x1": 0.7, "price": -0.2, "sd.price": 0.5}

CHILD = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    import mixlogit.likelihood as likelihood
    from mixlogit import MixedLogit
    from mixlogit.estimation.sharding import block_bytes_per_device
    from mixlogit.simulate import simulate_choices

    likelihood.BLOCK_ELEMENTS = 3 * 4 * 2 * 40  # 3 units of 4 situations, 3 alternatives, 40 draws
    model = MixedLogit(
        ["ASC_1"], {"x1": "normal", "price": "-lognormal"}, mean_covariates={"x1": "z"}
    )
    truth = json.loads(sys.argv[1])
    data = simulate_choices(model, truth, num_people=14, situations_per_person=4, seed=8317)
    fits = {n: model.fit(data, num_draws=40, devices=n, tolerance=1e-9) for n in (None, 2)}
    blocks = fits[2].problem.data.blocks
    print(json.dumps({
        "devices": len(jax.devices()),
        "num_blocks": int(blocks.dX.shape[0]),
        "one_device_blocks": int(fits[None].problem.data.blocks.dX.shape[0]),
        "held": block_bytes_per_device(blocks),
        "held_one": block_bytes_per_device(fits[None].problem.data.blocks),
        "dX_devices": len(blocks.dX.sharding.device_set),
        **{
            key: {
                "params": r.params.tolist(), "se": r.std_errors.tolist(),
                "robust_se": r.robust_std_errors.tolist(), "loglik": r.loglik,
                "converged": r.converged,
            }
            for key, r in (("one", fits[None]), ("two", fits[2]))
        },
    }))
    """
)


@pytest.fixture(scope="module")
def two_device_fits(tmp_path_factory):
    script = tmp_path_factory.mktemp("sharding") / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(TRUTH)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_devices_give_the_one_device_estimates(two_device_fits):
    out = two_device_fits
    assert out["devices"] == 2 and out["dX_devices"] == 2
    one, two = out["one"], out["two"]
    assert one["converged"] and two["converged"]
    assert abs(one["loglik"] - two["loglik"]) < 1e-10
    np.testing.assert_allclose(two["params"], one["params"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(two["se"], one["se"], rtol=1e-8)
    np.testing.assert_allclose(two["robust_se"], one["robust_se"], rtol=1e-8)


def test_each_device_holds_half_of_the_blocks(two_device_fits):
    out = two_device_fits
    # 14 units in blocks of 3: 5 blocks on one device, padded to 6 on two
    assert out["one_device_blocks"] == 5 and out["num_blocks"] == 6
    held = list(out["held"].values())
    assert len(held) == 2 and held[0] == held[1]
    # each device holds 3 of the 6 blocks (plus the replicated draw weights)
    (one,) = out["held_one"].values()
    assert held[0] < 0.65 * one


def test_one_device_mesh_is_the_default_fit():
    data = simulate_choices(MODEL, TRUTH, num_people=12, situations_per_person=3, seed=4406)
    default = MODEL.fit(data, num_draws=30, hessian=False)
    meshed = MODEL.fit(data, num_draws=30, hessian=False, devices=1)
    np.testing.assert_allclose(meshed.params, default.params, rtol=0, atol=1e-12)
    assert meshed.loglik == pytest.approx(default.loglik, abs=1e-12)


@pytest.mark.parametrize(
    ("devices", "error", "message"),
    [
        (0, ValueError, "devices=0: this process sees 1 cpu device"),
        (3, ValueError, "xla_force_host_platform_device_count=3"),
        ([], ValueError, "empty sequence"),
        ("cpu", TypeError, "number of devices or a sequence of jax devices"),
        (True, TypeError, "number of devices"),
        (["cpu"], TypeError, "must be jax devices"),
    ],
)
def test_bad_devices_are_refused_by_name(devices, error, message):
    if len(jax.devices()) != 1:
        pytest.skip("the messages assume one device")
    with pytest.raises(error, match=message):
        device_mesh(devices)


def test_repeated_device_is_refused():
    device = jax.devices()[0]
    with pytest.raises(ValueError, match="repeats a device"):
        device_mesh([device, device])


def test_devices_need_simulated_random_coefficients():
    data = simulate_choices(MODEL, TRUTH, num_people=8, situations_per_person=2, seed=4407)
    with pytest.raises(ValueError, match="maximum simulated likelihood"):
        MixedLogit(["ASC_1", "x1"]).fit(data, devices=1)
    with pytest.raises(ValueError, match="method='quadrature'"):
        MixedLogit(["ASC_1"], {"x1": "normal"}).fit(data, method="quadrature", devices=1)
