"""The Gaussian process that models a network's error from its point.

Only the error is modelled: flash, RAM and latency are exact functions of the
point (`cost`), so a model of them would only add noise and fitting time. The
model is BoTorch's `SingleTaskGP` (Matern kernel with dimension-scaled priors,
learned noise, standardised outcomes) on inputs the strategy gives it: the
unit-cube encoding of `encode` and a few exact features of the network.

Fitting the kernel hyperparameters is most of a model's cost, and they change
little from one observation to the next. So they are re-fitted only when the
number of observations has grown by `REFIT_GROWTH` since the last fit, starting
from the previous values and for at most `FIT_ITERATIONS` steps; in between, the
new observations enter the model with the hyperparameters kept.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.model import Model
from botorch.models.transforms.outcome import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood

#: Re-fit the hyperparameters once the observations are this many times as many.
REFIT_GROWTH = 1.2
#: L-BFGS iterations of one fit: starting from the previous fit, 100 get close to the
#: optimum, while the default (until converged) can take 10 s at 200 observations.
FIT_ITERATIONS = 100


class ErrorModel:
    """A GP of the error over encoded points, re-fitted on a growth schedule."""

    def __init__(self) -> None:
        self.model: Model | None = None
        self._hyperparameters: dict[str, torch.Tensor] | None = None
        self._fitted_with = 0
        self.fits = 0

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Condition on all observations so far (rows of `x`, errors `y`)."""
        train_x = torch.as_tensor(x, dtype=torch.double)
        train_y = torch.as_tensor(y, dtype=torch.double).reshape(-1, 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. equal errors, an optimiser stopping early
            model = SingleTaskGP(train_x, train_y, outcome_transform=Standardize(m=1))
            if self._hyperparameters is not None:
                model.load_state_dict(self._hyperparameters, strict=False)
            if self._hyperparameters is None or len(y) >= REFIT_GROWTH * self._fitted_with:
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model),
                                 optimizer_kwargs={"options": {"maxiter": FIT_ITERATIONS}})
                self._hyperparameters = {
                    k: v.detach().clone() for k, v in model.state_dict().items()
                    if not k.startswith("outcome_transform")
                }
                self._fitted_with = len(y)
                self.fits += 1
        model.eval()
        self.model = model

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the error (noise excluded) at rows of `x`."""
        assert self.model is not None, "update() first"
        with torch.no_grad():
            posterior = self.model.posterior(torch.as_tensor(x, dtype=torch.double))
            mean = posterior.mean.squeeze(-1).numpy()
            std = posterior.variance.clamp_min(0.0).sqrt().squeeze(-1).numpy()
        return mean, std

    def believe(self, x: np.ndarray, y: np.ndarray) -> None:
        """Pretend points `x` were observed at `y` (the kriging believer of a batch):
        the deviation shrinks around them, so a batch spreads out."""
        assert self.model is not None, "update() first"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.posterior(torch.as_tensor(x[:1], dtype=torch.double))  # caches
            self.model = self.model.condition_on_observations(
                torch.as_tensor(x, dtype=torch.double),
                torch.as_tensor(y, dtype=torch.double).reshape(-1, 1),
            )
