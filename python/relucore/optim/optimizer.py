"""The optimizer base class: parameter groups, per-parameter state, state_dict."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Tuple

import numpy as np

from ..nn.module import Parameter

__all__ = ["Optimizer"]


def check_nonnegative(**values: float) -> None:
    for name, v in values.items():
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0, got {v}")


class Optimizer:
    r"""Base class: holds ``param_groups`` (dicts with ``"params"`` and the hyper-parameters) and
    ``state`` (per parameter), and updates every parameter that has a gradient in :meth:`step`.

    Args:
        params: an iterable of :class:`~relucore.nn.Parameter`, or of dicts each with ``"params"``
            and hyper-parameters that override ``defaults`` for that group.
        defaults: the hyper-parameters of groups that do not set them.
    """

    def __init__(self, params: Iterable, defaults: Dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: Dict[Parameter, Dict[str, Any]] = {}
        self.param_groups: List[Dict[str, Any]] = []
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: params is an empty list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def add_param_group(self, group: Dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (the defaults fill the rest)."""
        if not isinstance(group, dict):
            raise TypeError(f"a parameter group is a dict, got {type(group).__name__}")
        group = dict(group)
        ps = group.get("params")
        ps = [ps] if isinstance(ps, Parameter) else list(ps or [])
        for p in ps:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__} optimizes relucore.nn.Parameter objects, "
                                f"got {type(p).__name__}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in ps) or len({id(p) for p in ps}) != len(ps):
            raise ValueError("a parameter appears in more than one parameter group (or twice in one)")
        group["params"] = ps
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._plain(group)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: Dict[str, Any]) -> None:
        """Validate a group's hyper-parameters (ValueError naming the bad one)."""

    @staticmethod
    def _plain(group: Dict[str, Any]) -> None:
        """NumPy scalars and 0-d arrays among the hyper-parameters (``np.float64(0.1)``, betas of
        them, values a schedule assigned) as Python numbers, so that the native and NumPy updates
        compute in the parameters' dtype alike; run by every step."""
        def plain(v):
            return v.item() if isinstance(v, np.generic) or (isinstance(v, np.ndarray) and v.ndim == 0) else v

        for k, v in group.items():
            if k == "params":
                continue
            if isinstance(v, (tuple, list)):
                group[k] = type(v)(plain(e) for e in v)
            else:
                group[k] = plain(v)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter: ``None`` (the default), or zeros in place."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad[...] = 0

    def step(self) -> None:
        """Update, in place, every parameter whose ``grad`` is not ``None``."""
        for group in self.param_groups:
            self._plain(group)
            for p in group["params"]:
                if p.grad is not None:
                    self._check_grad(p)
                    self._update(p, p.grad.astype(p.data.dtype, copy=False), group, self.state.setdefault(p, {}))

    #: State entries that are arrays shaped like the parameter, updated in place (subclasses name
    #: theirs); any other entry is kept as it is, a 0-d array (as a saved file gives) as a number.
    _ARRAY_STATE: Tuple[str, ...] = ()

    def _check_grad(self, p: Parameter) -> None:
        """A TypeError naming the optimizer if ``p.grad`` is not float32/float64, a ValueError if it
        is not shaped like ``p``, or if ``p`` changed shape since its state (momentum, moments) was
        made."""
        g = np.asarray(p.grad)
        if g.dtype not in (np.float32, np.float64):
            raise TypeError(f"{type(self).__name__}: gradients must be float32 or float64, got {g.dtype}")
        if g.shape != p.data.shape:
            raise ValueError(f"{type(self).__name__}: a gradient of shape {g.shape} for "
                             f"a parameter of shape {p.data.shape}")
        for name, v in self.state.get(p, {}).items():
            if name in self._ARRAY_STATE and np.shape(v) != p.data.shape:
                raise ValueError(f"{type(self).__name__}: a parameter of shape {p.data.shape} has state "
                                 f"{name!r} of shape {np.shape(v)} (it changed shape since the optimizer's last step)")

    def _update(self, p: Parameter, grad: np.ndarray, group: Dict[str, Any], state: Dict[str, Any]) -> None:
        raise NotImplementedError

    def _params(self) -> List[Parameter]:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> Dict[str, Any]:
        """``{"state": {index: {name: value}}, "param_groups": [{..., "params": [index, ...]}]}``
        with parameters numbered in group order, as PyTorch's; arrays are copies."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[id(p)]: {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in s.items()}
                 for p, s in self.state.items() if id(p) in index}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore hyper-parameters and state from :meth:`state_dict` of an optimizer over parameters
        of the same shapes, in the same groups (ValueError naming what differs)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"load_state_dict: {len(groups)} parameter groups, this optimizer has "
                             f"{len(self.param_groups)}")
        params = self._params()
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"load_state_dict: parameter group {i} has {len(saved['params'])} parameters, "
                                 f"this optimizer's has {len(own['params'])}")
        new_state = {}
        for k, s in state_dict["state"].items():
            k = int(k)
            if not 0 <= k < len(params):
                raise ValueError(f"load_state_dict: state for parameter {k}, which does not exist")
            p = params[k]
            entry = {}
            for name, v in s.items():
                array = isinstance(v, (np.ndarray, np.generic))
                if name in self._ARRAY_STATE or (array and np.ndim(v) > 0):
                    v = np.asarray(v)  # a buffer updated in place: an array, a 0-d one too
                    if v.shape != p.shape:
                        raise ValueError(f"load_state_dict: state {name!r} of parameter {k} has shape {v.shape}, "
                                         f"the parameter has {p.shape}")
                    v = np.array(v, dtype=p.dtype)
                elif array:  # a number (a 0-d array once saved to .npz)
                    v = v.item()
                entry[name] = v
            new_state[p] = entry
        merged = [{**own, **{k: v for k, v in saved.items() if k != "params"}}
                  for saved, own in zip(groups, self.param_groups)]
        for group in merged:
            self._plain(group)
            self._check_group(group)
        for own, group in zip(self.param_groups, merged):
            own.update(group)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])
