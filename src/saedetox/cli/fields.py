"""Command-line options generated from config dataclasses: each default and help text is written once, in the dataclass.

A field's ``metadata`` says how it appears on the command line: ``help``; ``choices`` (names, or a
function giving them, read each time the command is built: a registry's names); ``flag`` (default
``--field-name``) and ``short``; ``cli: False`` leaves it out. A ``tuple[str, ...]`` field takes one
comma-separated value. A command declares a parameter annotated with the dataclass (optionally
``Annotated[Cls, Fields(...)]`` to leave fields out or narrow choices); :func:`with_options` puts the
fields' options in its place and hands the command the built dataclass. A parameter annotated
``Annotated[str, typer.Option(...), Choices(fn)]`` gets ``fn()``'s names as its choices the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperCommand, TyperGroup

Names = Sequence[str] | Callable[[], Sequence[str]]


@dataclass(frozen=True)
class Fields:
    """How one command shows a dataclass: fields it leaves out, and choices it narrows."""

    skip: tuple[str, ...] = ()
    choices: Mapping[str, Names] = field(default_factory=dict)


@dataclass(frozen=True)
class Choices:
    """The names a ``str`` option accepts, read when the command is built (a registry can grow)."""

    names: Names


def _names(names: Names) -> tuple[str, ...]:
    return tuple(names() if callable(names) else names)


def _choice(names: Names, optional: bool) -> Any:
    kind = Literal[_names(names)]  # type: ignore[valid-type]
    return kind | None if optional else kind


def _is_names(kind: Any) -> bool:
    return typing.get_origin(kind) is tuple and typing.get_args(kind) == (str, Ellipsis)


def field_parameters(cls: type, shown: Fields | None = None) -> list[inspect.Parameter]:
    """One typer option per field of ``cls`` (see the module docstring)."""
    shown = shown or Fields()
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if f.name in shown.skip or meta.get("cli", True) is False:
            continue
        default: Any = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        required = default is dataclasses.MISSING
        kind = hints[f.name]
        if _is_names(kind):  # a tuple of names: one comma-separated value
            kind, default = str, ",".join(default) if not required else default
        choices = shown.choices.get(f.name, meta.get("choices"))
        if choices is not None:
            kind = _choice(choices, optional=default is None)
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        names = [f"{flag}/--no-{flag[2:]}" if kind is bool else flag, *([meta["short"]] if "short" in meta else [])]
        option = typer.Option(*names, help=meta.get("help"))
        out.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if required else default,
                annotation=Annotated[kind, option],
            )
        )
    return out


def _group(annotation: Any) -> tuple[type, Fields] | None:
    """The dataclass (and how it is shown) a command parameter stands for, if it is one."""
    shown = Fields()
    if typing.get_origin(annotation) is Annotated:
        annotation, *extra = typing.get_args(annotation)
        shown = next((e for e in extra if isinstance(e, Fields)), shown)
    return (annotation, shown) if dataclasses.is_dataclass(annotation) else None


def _dynamic(annotation: Any, default: Any) -> Any:
    """An ``Annotated[str, typer.Option, Choices]`` parameter with its choices read now."""
    if typing.get_origin(annotation) is not Annotated:
        return annotation
    _, *extra = typing.get_args(annotation)
    choices = next((e for e in extra if isinstance(e, Choices)), None)
    if choices is None:
        return annotation
    option = next(e for e in extra if not isinstance(e, Choices))
    return Annotated[_choice(choices.names, optional=default is None), option]


def _build(cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if _is_names(hints[name]) and isinstance(value, str):
            values[name] = tuple(v.strip() for v in value.split(",") if v.strip())
    return cls(**values)


class OptionsCommand:
    """A command whose signature (what typer shows and parses) is rebuilt from its dataclasses each time."""

    def __init__(self, command: Callable[..., Any]) -> None:
        self.command = command
        self.__name__ = command.__name__
        self.__qualname__ = command.__qualname__
        self.__module__ = command.__module__
        self.__doc__ = command.__doc__
        self._hints = typing.get_type_hints(command, include_extras=True)
        self._groups = {
            name: group
            for name in inspect.signature(command).parameters
            if (group := _group(self._hints.get(name))) is not None
        }

    @property
    def __signature__(self) -> inspect.Signature:  # type: ignore[override]
        params: list[inspect.Parameter] = []
        for p in inspect.signature(self.command).parameters.values():
            if p.name in self._groups:
                params += field_parameters(*self._groups[p.name])
            else:
                params.append(
                    p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=_dynamic(self._hints[p.name], p.default))
                )
        return inspect.Signature(params)

    @property
    def __annotations__(self) -> dict[str, Any]:  # type: ignore[override]
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    def __call__(self, **kwargs: Any) -> Any:
        for name, (cls, _) in self._groups.items():
            names = [f.name for f in dataclasses.fields(cls) if f.name in kwargs]
            kwargs[name] = _build(cls, {n: kwargs.pop(n) for n in names})
        return self.command(**kwargs)


def with_options(command: Callable[..., Any]) -> OptionsCommand:
    """Decorator: ``command``'s dataclass parameters become their fields' options (see the module docstring)."""
    return OptionsCommand(command)


def _plain_types(params: list[Any]) -> list[Any]:
    """Help shows a flag with no type (it takes no value) and a repeated value as ``<str>...``, not ``<list[str]>``."""
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
        elif p.nargs != 1 or getattr(p, "multiple", False):
            p.display_type_rich = functools.partial(_repeated, p, type(p).display_type_rich)
    return params


def _repeated(param: Any, shown: Callable[..., str | None], ctx: Any) -> str | None:
    text = shown(param, ctx)
    return re.sub(r"<list\[(.*)\]>", r"<\1>...", text) if text else text


class Command(TyperCommand):
    """A command whose on/off flags show no ``<bool>`` type in ``--help``."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_types(super().get_params(ctx))


class Group(TyperGroup):
    """The command group, with the same help for its flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_types(super().get_params(ctx))
