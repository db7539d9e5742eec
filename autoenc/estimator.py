"""``AutoencoderTransformer``: an autoencoder behind scikit-learn's transformer API, a drop-in for ``PCA``."""
from __future__ import annotations

import copy
import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .validation import check_int, check_positive_float
from .config import ModelConfig, TrainConfig
from .batched import fit_group
from .train import DivergenceError, torch_threads

__all__ = ["AutoencoderTransformer"]

_FLOATS = [np.float64, np.float32]
_BATCH = 8192


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """An autoencoder as a scikit-learn transformer: ``transform`` gives codes, ``inverse_transform`` decodes.

    Swap it for ``PCA(n_components=k)`` in a Pipeline or a grid search. The network trains in float32 on
    ``X`` (converted if needed); ``transform``, ``inverse_transform`` and ``score`` compute in the input's dtype
    (float64 input runs an exact float64 copy of the float32 weights) and return that dtype.

    Parameters
    ----------
    n_components : int, default=2
        Size of the code (the bottleneck), at most ``n_features``.
    hidden : tuple of int, default=(64,)
        Encoder widths (``kind="conv"``: channels per convolution stage); the decoder mirrors them. ``()`` gives a
        shallow autoencoder.
    activation : str, default="relu"
        One of ``autoenc.ACTIVATIONS``, after every hidden layer.
    linear : bool, default=False
        Drop every nonlinearity (the network then spans at most PCA's subspace).
    epochs : int, default=200
        Training budget in passes over the data.
    batch_size : int, default=128
    lr : float, default=1e-3
        Adam learning rate.
    weight_decay : float, default=0.0
    patience : int or None, default=None
        None trains the full budget; an int holds out ``validation_fraction`` of ``X`` and stops when its loss has
        not improved for that many epochs, keeping the best weights.
    validation_fraction : float, default=0.1
        Share of ``X`` held out for early stopping; used only when ``patience`` is set.
    threads : int, default=1
        torch threads while training and transforming (restored afterwards).
    progress : bool, default=False
        Show a progress bar over epochs.
    kind : {"mlp", "conv"}, default="mlp"
        Fully connected, or strided convolutions around a linear code (see :class:`autoenc.ModelConfig`).
    input_shape : tuple of int or None, default=None
        ``kind="conv"`` only: ``(channels, height, width)`` or ``(channels, length)`` of each row of ``X``, which
        holds the values channel-major (``images.reshape(n, -1)``); ``X`` stays 2-D.
    kernel_size : int, default=3
        ``kind="conv"`` only: kernel of every convolution.
    stride : int, default=2
        ``kind="conv"`` only: stride of every convolution.
    device : str, default="cpu"
        Where to train and compute: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``. ``model_`` lives
        there; ``transform`` and ``inverse_transform`` send each chunk there and return numpy arrays.
    random_state : int, RandomState instance or None, default=None
        An int is the training seed itself (``TrainConfig(seed=random_state)``); otherwise a seed is drawn from
        ``check_random_state(random_state)``. It fixes the weights, the data order and the validation split.

    Attributes
    ----------
    model_ : Autoencoder
        The trained network (float32, eval mode).
    history_ : autoenc.train.History
        Per-epoch losses.
    seed_ : int
        The training seed used.
    n_components_ : int
        Size of the code.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names seen during ``fit``, when ``X`` had string column names.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X = load_digits().data / 16
    >>> ae = AutoencoderTransformer(n_components=8, epochs=20, random_state=0).fit(X)
    >>> ae.transform(X).shape
    (1797, 8)
    >>> ae.inverse_transform(ae.transform(X)).shape
    (1797, 64)
    """

    def __init__(
        self,
        n_components=2,
        hidden=(64,),
        activation="relu",
        linear=False,
        epochs=200,
        batch_size=128,
        lr=1e-3,
        weight_decay=0.0,
        patience=None,
        validation_fraction=0.1,
        threads=1,
        progress=False,
        random_state=None,
        kind="mlp",
        input_shape=None,
        kernel_size=3,
        stride=2,
        device="cpu",
    ):
        self.n_components = n_components
        self.hidden = hidden
        self.activation = activation
        self.linear = linear
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.threads = threads
        self.progress = progress
        self.random_state = random_state
        self.kind = kind
        self.input_shape = input_shape
        self.kernel_size = kernel_size
        self.stride = stride
        self.device = device

    def _seed(self):
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            return check_int(rs, "random_state", minimum=0, maximum=2**32 - 1)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def fit(self, X, y=None):
        """Train a fresh autoencoder on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self : AutoencoderTransformer
        """
        X = validate_data(self, X, dtype=_FLOATS)
        n_samples, n_features = X.shape
        n_components = check_int(self.n_components, "n_components", minimum=1)
        if n_components > n_features:
            raise ValueError(
                f"n_components={n_components} must be <= n_features={n_features} (X has shape {X.shape})"
            )
        model_config = ModelConfig(
            input_dim=n_features, bottleneck=n_components, hidden=self.hidden,
            activation=self.activation, linear=self.linear, kind=self.kind, input_shape=self.input_shape,
            kernel_size=self.kernel_size, stride=self.stride,
        )
        seed = self._seed()
        train_config = TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
            patience=self.patience, seed=seed, threads=self.threads, device=self.device,
        )
        X_train, X_val = X, None
        if self.patience is not None:
            X_train, X_val = self._holdout(X, seed)
        # A group of one: exact to solo fit, and faster (no autograd graph, one fused Adam buffer).
        (member,) = fit_group([model_config], X_train, X_val, train_config, progress=bool(self.progress))
        if member.error is not None:
            raise DivergenceError(member.error, member.history.epochs)
        self.history_ = member.history
        self.model_, self.seed_, self.n_components_ = member.model, seed, n_components
        return self

    def _holdout(self, X, seed):
        fraction = check_positive_float(self.validation_fraction, "validation_fraction")
        if fraction >= 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
        n_val = int(round(fraction * len(X)))
        if n_val < 1 or n_val >= len(X):
            raise ValueError(
                f"early stopping needs at least one training and one validation sample: n_samples={len(X)} "
                f"with validation_fraction={fraction} gives {n_val} validation sample(s)"
            )
        order = np.random.default_rng(seed).permutation(len(X))
        return X[order[n_val:]], X[order[:n_val]]

    def _model_for(self, dtype):
        # Computing float64 requests in float64 keeps results independent of how rows are batched.
        return self.model_ if dtype == np.float32 else copy.deepcopy(self.model_).to(torch.float64)

    @torch.no_grad()
    def _run(self, method, X):
        model = self._model_for(X.dtype)
        fn, device = getattr(model, method), next(model.parameters()).device
        with torch_threads(check_int(self.threads, "threads", minimum=1)):
            parts = [fn(torch.tensor(X[s : s + _BATCH]).to(device)).cpu() for s in range(0, len(X), _BATCH)]
        return torch.cat(parts).numpy()

    def transform(self, X):
        """Codes of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components_)
            float32 for float32 input, float64 otherwise.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        return self._run("encode", X)

    def inverse_transform(self, X):
        """Decode codes back to feature space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components_)
            Codes, e.g. from ``transform``.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features_in_)
            float32 for float32 input, float64 otherwise.
        """
        check_is_fitted(self)
        Z = check_array(X, input_name="X", dtype=_FLOATS)
        if Z.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {Z.shape[1]} features, but inverse_transform expects n_components_={self.n_components_} "
                f"columns (codes from transform), got shape {Z.shape}"
            )
        return self._run("decode", Z)

    def score(self, X, y=None):
        """Negative mean reconstruction error: minus the mean over samples and features of ``(x_hat - x)**2``.

        Higher is better, as scikit-learn's model selection expects.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        return -float(np.mean((self._run("forward", X) - X) ** 2))

    @property
    def _n_features_out(self):
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
