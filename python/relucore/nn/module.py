"""The layer base class :class:`Module` and :class:`Parameter` (an array with its gradient)."""

from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from typing import Iterator, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from . import _functions as F

__all__ = ["Parameter", "Module", "IncompatibleKeys"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_generation = 0  # counts changes of any module's attributes, parameters, buffers, children or mode


def generation() -> int:
    """A number that changes whenever any module's attributes, parameters, buffers, children or mode
    change (not their values in place): what cached evaluation plans are stamped with."""
    return _generation


def _changed() -> None:
    global _generation
    _generation += 1


def float_dtype(dtype) -> np.dtype:
    """``dtype`` as float32 or float64; anything else is a TypeError naming what is supported."""
    try:
        d = np.dtype(dtype)
    except TypeError:
        d = None
    if d not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return d


def plain(a) -> bool:
    """``a`` is what the kernels take without a copy: a C-contiguous aligned native ndarray (or None)."""
    return a is None or (type(a) is np.ndarray and a.flags.c_contiguous and a.flags.aligned and a.dtype.isnative)


def _key(x, w, b) -> tuple:
    """What a layer's checked shapes are keyed by (see Module._checked)."""
    return x.shape, x.dtype, w.shape, None if b is None else b.shape


def check_int(name: str, v, minimum: int = 1) -> int:
    """``v`` as an int >= ``minimum`` (a bool or a float is a mistake), else a ValueError naming it."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


class Parameter:
    r"""A trainable array: ``data`` (the value) and ``grad`` (its gradient, ``None`` until the first
    :meth:`Module.backward`). Optimizers update ``data`` in place.

    Args:
        data: the initial value (copied).
        dtype: float32 or float64. Default: ``data``'s dtype if it is one of them, else float32.

    Example::

        >>> p = nn.Parameter(np.zeros((3, 4)))
        >>> p.shape, p.dtype, p.grad
        ((3, 4), dtype('float64'), None)
    """

    __slots__ = ("data", "grad")

    def __init__(self, data, dtype=None) -> None:
        data = np.asarray(data)
        if dtype is None:
            dtype = data.dtype if data.dtype in FLOAT_DTYPES else np.float32
        self.data: np.ndarray = np.array(data, dtype=float_dtype(dtype), order="C")
        self.grad: Optional[np.ndarray] = None

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)

    def __array__(self, dtype=None, copy=None):
        a = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return a.copy() if copy and a is self.data else a

    def __repr__(self) -> str:
        return f"Parameter containing:\n{self.data!r}"

    def accumulate(self, g: np.ndarray) -> None:
        """Add ``g`` to :attr:`grad` (which becomes ``g`` itself when it is ``None``)."""
        g = np.asarray(g, dtype=self.data.dtype).reshape(self.data.shape)
        if self.grad is None:
            self.grad = g if g.flags.writeable and g.flags.c_contiguous else np.array(g)
        else:
            self.grad += g


class IncompatibleKeys(NamedTuple):
    missing_keys: List[str]
    unexpected_keys: List[str]


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return text.replace("\n", "\n" + pad)


class Module:
    r"""Base class of every layer: holds parameters, buffers and child modules.

    A layer implements :meth:`forward` (keeping what its backward needs) and :meth:`backward`, which
    takes the gradient of the loss with respect to the layer's output, *adds* the gradients of its
    parameters to their ``grad`` and returns the gradient with respect to its input. Each
    ``forward`` allows one ``backward``, and an instance keeps only its last forward's state: use
    a separate instance at each place in a network. Parameters, buffers and modules assigned as
    attributes are registered by name, as in PyTorch.

    Example::

        >>> class TwoLayer(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc1, self.act, self.fc2 = nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)
        ...     def forward(self, x):
        ...         return self.fc2(self.act(self.fc1(x)))
        ...     def backward(self, dy):
        ...         return self.fc1.backward(self.act.backward(self.fc2.backward(dy)))
        >>> m = TwoLayer()
        >>> y = m(np.ones((3, 4), np.float32))
        >>> m.backward(np.ones_like(y)).shape, [n for n, _ in m.named_parameters()]
        ((3, 4), ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'])
    """

    training: bool

    def __init__(self) -> None:
        d = self.__dict__
        d["_parameters"], d["_buffers"], d["_modules"] = OrderedDict(), OrderedDict(), OrderedDict()
        d["training"] = True
        d["_cache"] = None

    # -------------------------------------------------------------- registration

    def __setattr__(self, name: str, value) -> None:
        _changed()
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() has run")
        params, buffers, modules = d["_parameters"], d["_buffers"], d["_modules"]
        if isinstance(value, Parameter):
            if name not in params:  # a replacement keeps its place in the order
                self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            if name not in modules:
                self._forget(name)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r} "
                                "(a Parameter or None)")
            params[name] = None
        elif name in buffers:
            buffers[name] = None if value is None else np.asarray(value)
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to child module {name!r}")
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        _changed()
        self.__dict__.pop(name, None)
        for k in ("_parameters", "_buffers", "_modules"):
            self.__dict__[k].pop(name, None)

    def __getattr__(self, name: str):
        d = self.__dict__
        for k in ("_parameters", "_buffers", "_modules"):
            if k in d and name in d[k]:
                return d[k][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        _changed()
        if name in self.__dict__:
            object.__delattr__(self, name)
        else:
            self._forget(name)

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        """Register ``param`` (or ``None``: a parameter slot left empty) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"parameter {name!r} must be a Parameter or None, got {type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, array: Optional[np.ndarray]) -> None:
        """Register a state array that is not trained (e.g. running statistics): it is part of
        :meth:`state_dict` and follows :meth:`to`. ``None`` leaves the slot empty."""
        self._forget(name)
        self._buffers[name] = None if array is None else np.asarray(array)

    # -------------------------------------------------------------- traversal

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        """This module and every descendant, each once, with its dotted name."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            stack.extend(reversed([(f"{name}.{n}" if name else n, c) for n, c in m.named_children()]))

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def _named(self, kind: str, prefix: str, recurse: bool):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for n, v in m.__dict__[kind].items():
                if v is not None and id(v) not in seen:
                    seen.add(id(v))
                    yield (f"{mname}.{n}" if mname else n), v

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[Tuple[str, Parameter]]:
        """``(name, Parameter)`` pairs, children's with dotted names; a shared parameter once."""
        return self._named("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[Tuple[str, np.ndarray]]:
        return self._named("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # -------------------------------------------------------------- modes and gradients

    def train(self, mode: bool = True) -> "Module":
        """Training mode (``mode=True``) or evaluation mode, for this module and its children."""
        _changed()
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: batch norm uses its running statistics, dropout passes its input."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: ``None`` (the default, as PyTorch), or zeros in place."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0

    # -------------------------------------------------------------- dtype

    def to(self, dtype) -> "Module":
        """Convert every parameter (and its gradient) and floating buffer to ``dtype`` (float32 or
        float64), in place; returns ``self``."""
        dtype = float_dtype(dtype)
        _changed()
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None and p.data.dtype != dtype:
                    p.data = p.data.astype(dtype)
                    p.grad = None if p.grad is None else p.grad.astype(dtype)
            for n, b in m._buffers.items():
                if b is not None and b.dtype.kind == "f" and b.dtype != dtype:
                    m._buffers[n] = b.astype(dtype)
        return self

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    # -------------------------------------------------------------- state

    def _state_arrays(self) -> "OrderedDict[str, np.ndarray]":
        """Name -> the live array of every parameter and buffer."""
        out = OrderedDict()
        for mname, m in self.named_modules():
            for kind in ("_parameters", "_buffers"):
                for n, v in m.__dict__[kind].items():
                    if v is not None:
                        out[f"{mname}.{n}" if mname else n] = v.data if isinstance(v, Parameter) else v
        return out

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter and buffer, by dotted name (a snapshot: training on does not
        change it)."""
        return OrderedDict((k, np.array(v)) for k, v in self._state_arrays().items())

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy ``state_dict``'s arrays into this module's parameters and buffers, in place.

        With ``strict=True`` a missing or unexpected key is a KeyError naming it; a shape that
        differs is a ValueError naming the key. Values are cast to the module's dtypes. Nothing is
        changed if any check fails.

        Returns:
            ``IncompatibleKeys(missing_keys, unexpected_keys)``.
        """
        own = self._state_arrays()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing key(s) " + ", ".join(map(repr, missing)))
            if unexpected:
                parts.append("unexpected key(s) " + ", ".join(map(repr, unexpected)))
            raise KeyError(f"{type(self).__name__}.load_state_dict: " + "; ".join(parts))
        todo = []
        for k, dst in own.items():
            if k not in state_dict:
                continue
            src = np.asarray(state_dict[k])
            if src.shape != dst.shape:
                raise ValueError(f"load_state_dict: {k!r} has shape {src.shape}, the module's has {dst.shape}")
            if not np.can_cast(src.dtype, dst.dtype, "same_kind"):
                raise TypeError(f"load_state_dict: {k!r} has dtype {src.dtype}, the module's is {dst.dtype}")
            todo.append((dst, src))
        for dst, src in todo:
            np.copyto(dst, src, casting="same_kind")
        return IncompatibleKeys(missing, unexpected)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write :meth:`state_dict` to an uncompressed ``.npz`` file (``numpy.savez``, which adds
        ``.npz`` to a path without it; :meth:`load` takes the same path)."""
        np.savez(path, **self.state_dict())

    def load(self, path, strict: bool = True) -> IncompatibleKeys:
        """Load a file written by :meth:`save` (the path passed to :meth:`save`, the file's own, or
        an open binary file) with :meth:`load_state_dict`; a file that is not one is a ValueError
        naming it."""
        name = path
        if not hasattr(path, "read"):
            name = os.fspath(path)
            if isinstance(name, str) and not name.endswith(".npz") and not os.path.isfile(name):
                name += ".npz"  # numpy.savez added it
        try:
            f = np.load(name, allow_pickle=False)
        except (ValueError, zipfile.BadZipFile, EOFError) as e:  # what the file holds, not OSError
            raise ValueError(f"{name!r} is not a file written by Module.save() ({e})") from e
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError(f"{name!r} is not a file written by Module.save() (a single .npy array)")
        with f:
            return self.load_state_dict({k: f[k] for k in f.files}, strict=strict)

    # -------------------------------------------------------------- computing

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # every forward/backward runs on the backend found at its entry (see nn/_functions.py)
        for name in ("forward", "backward"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "__pinned__", False):
                setattr(cls, name, F.pinned(method))

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _keep(self, *saved) -> None:
        """Keep what backward needs (one backward per forward)."""
        self.__dict__["_cache"] = saved

    def _take(self) -> tuple:
        """What forward kept; a RuntimeError naming the layer if there is nothing."""
        saved = self.__dict__["_cache"]
        if saved is None:
            raise RuntimeError(f"{self._label()}: backward() called without a forward() before it "
                               "(each forward() allows one backward())")
        self.__dict__["_cache"] = None
        return saved

    def _checked(self, x, w, b) -> bool:
        """Whether ``x``, ``w`` and ``b`` (or None) can go to the native kernels without the argument
        checks: the native backend, C-contiguous aligned arrays of one dtype, and shapes that passed
        the checks since the module last changed (for a small layer the checks cost more than the
        kernels)."""
        if not (plain(x) and plain(w) and plain(b) and x.dtype == w.dtype and (b is None or b.dtype == w.dtype)):
            return False
        fast = self.__dict__.get("_checked_keys")
        return (fast is not None and fast[0] == generation() and _key(x, w, b) in fast[1]
                and F.current() is F.native())

    def _remember(self, x, w, b) -> None:
        """Note that the checks passed for these arrays' shapes (see :meth:`_checked`); a few per module."""
        if F.current() is not F.native() or not plain(x):
            return
        fast = self.__dict__.get("_checked_keys")
        if fast is None or fast[0] != generation() or len(fast[1]) >= 8:
            fast = self.__dict__["_checked_keys"] = (generation(), set())
        fast[1].add(_key(x, w, b))

    def _label(self) -> str:
        """How errors name this layer: its one-line repr."""
        return f"{type(self).__name__}({self.extra_repr()})"

    def _input(self, x, layout: str, ndims: Optional[Tuple[int, ...]] = None, min_ndim: int = 0,
               channels: Optional[int] = None, dtype: Optional[np.dtype] = None) -> np.ndarray:
        """``x`` as an array after the checks every layer makes, with errors naming the layer: a
        float32/float64 dtype (``dtype`` if the layer has one), a rank in ``ndims`` (any if None)
        and at least ``min_ndim``, ``channels`` on axis 1 (``layout`` is the expected shape, e.g.
        "(N, 3, H, W)")."""
        x = x if isinstance(x, np.ndarray) else np.asarray(x)
        if x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{self._label()}: input dtype must be float32 or float64, got {x.dtype}")
        if ((ndims is not None and x.ndim not in ndims) or x.ndim < min_ndim
                or (channels is not None and x.shape[1] != channels)):
            raise ValueError(f"{self._label()}: expected input of shape {layout}, got {x.shape}")
        if dtype is not None and x.dtype != dtype:
            raise TypeError(f"{self._label()}: input is {x.dtype} but the layer's parameters are {dtype} "
                            f"(convert the input, or the layer with .to(np.{x.dtype}))")
        return x

    def _dy(self, dy, shape: Tuple[int, ...], saved: tuple, dtype=None) -> np.ndarray:
        """``dy`` as an array shaped like the forward output (``shape``), else a ValueError, and of
        its dtype (``dtype``, if given), else a TypeError (no silent cast); on either error
        ``saved`` (what :meth:`_take` returned) is kept again, so a corrected backward can follow."""
        dy = dy if isinstance(dy, np.ndarray) else np.asarray(dy)
        if dtype is not None and dy.dtype != dtype:
            self._keep(*saved)
            raise TypeError(f"{self._label()}: backward() expected dy of dtype {np.dtype(dtype).name} (the forward "
                            f"output's), got {dy.dtype}")
        if dy.shape != tuple(shape):
            self._keep(*saved)
            raise ValueError(f"{self._label()}: backward() expected dy of shape {tuple(shape)} (the forward "
                             f"output's), got {dy.shape}")
        return dy

    def _kernel(self, f, *args, **kwargs):
        """``f(*args, **kwargs)``, its argument errors prefixed with the layer's name."""
        try:
            return f(*args, **kwargs)
        except (TypeError, ValueError) as e:
            raise (TypeError if isinstance(e, TypeError) else ValueError)(f"{self._label()}: {e}") from e

    def extra_repr(self) -> str:
        """The arguments shown inside this module's repr."""
        return ""

    def __repr__(self) -> str:
        lines = [ln for ln in [self.extra_repr()] if ln]
        lines += [f"({n}): " + _indent(repr(m), 2) for n, m in self._modules.items()]
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        return type(self).__name__ + "(\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self) -> List[str]:
        extra = [*self._parameters, *self._buffers, *self._modules]
        return sorted(set(super().__dir__()) | set(extra))
