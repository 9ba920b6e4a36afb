"""NumPy primitives, so the family functions also evaluate on floats and NumPy arrays
(data generators, references, moment matching in configs)."""

from __future__ import annotations

import numpy as np
from scipy import special

from mixlogit._array_ops import NamespaceOps


class NumpyOps(NamespaceOps):
    xp = np
    special = special
    stop_gradient = staticmethod(lambda x: x)
    sigmoid = staticmethod(special.expit)

    @staticmethod
    def log_sigmoid(x):
        return -np.logaddexp(0.0, -np.asarray(x))

    @staticmethod
    def softplus(x):
        return np.logaddexp(0.0, x)

    def float_dtype(self, like):
        return _float_dtype(like)

    def segment_sum(self, x, segment_ids, num_segments):
        x = np.asarray(x)
        out = np.zeros((num_segments, *x.shape[1:]), dtype=np.result_type(x.dtype, np.float64))
        np.add.at(out, np.asarray(segment_ids), x)
        return out

    def segment_max(self, x, segment_ids, num_segments):
        x = np.asarray(x)
        out = np.full(num_segments, -np.inf, dtype=np.result_type(x.dtype, np.float64))
        np.maximum.at(out, np.asarray(segment_ids), x)
        return out

    @staticmethod
    def with_gradients(value, value_and_grads, inputs):
        return value(*inputs)  # NumPy does not differentiate: the value alone


def _float_dtype(like):
    dtype = np.asarray(like).dtype
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


NUMPY_OPS = NumpyOps()
