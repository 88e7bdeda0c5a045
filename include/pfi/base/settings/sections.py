"""The settings sections that the layers above parse for themselves, in one registry.

A section's owner (the DMP client's ``[dmp]``, intake's ``[intake]``…) declares its parser where it
defines its configuration class::

    @section("dmp")
    @dataclass(frozen=True)
    class DmpConfig:
        @classmethod
        def from_settings(cls, settings: Settings) -> DmpConfig: ...   # raises ConfigurationError

and :func:`section_problems` (``pfi config check``) runs every registered parser, so a section
can be neither forgotten by the check nor misspelt in the file (a table nobody registered is a
problem). Registration happens when the owner's module is imported: the check imports every
module of the ``pfi`` package first (:func:`register_all`), so no list is kept by hand.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pfi.base.errors import ConfigurationError
from pfi.base.settings.core import CORE_SECTIONS

if TYPE_CHECKING:
    from pfi.base.settings.core import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Section:
    """A section of the settings file and the parser that checks it (raises
    :class:`ConfigurationError` with what is wrong)."""

    key: str
    label: str
    parse: Callable[[Settings], Any]
    owner: str


_REGISTRY: dict[str, Section] = {}


def section(key: str, *, label: str | None = None) -> Callable[[type[T]], type[T]]:
    """Class decorator: register the class's ``check_settings(settings)`` classmethod (else its
    ``from_settings(settings)``) as the parser of the TOML table ``key`` (``a.b`` for a table
    nested in another section's)."""

    def register(cls: type[T]) -> type[T]:
        parser = getattr(cls, "check_settings", None) or cls.from_settings
        _REGISTRY[key] = Section(
            key, label or f"[{key}]", parser, f"{cls.__module__}.{cls.__qualname__}"
        )
        return cls

    return register


def registered() -> tuple[Section, ...]:
    return tuple(_REGISTRY[key] for key in sorted(_REGISTRY))


def register_all(package: str = "pfi") -> tuple[Section, ...]:
    """Import every module of ``package`` so that each section registers itself."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    return registered()


def section_problems(settings: Settings) -> list[str]:
    """What each registered parser finds wrong in its section, and the tables nobody reads."""
    problems = []
    for entry in registered():
        try:
            entry.parse(settings)
        except ConfigurationError as exc:
            text = str(exc)  # a parser may name its section itself
            problems.append(text if text.startswith(entry.label) else f"{entry.label}: {text}")
    known = CORE_SECTIONS | {key.split(".")[0] for key in _REGISTRY}
    for key in sorted(set(settings.extra) - known):
        problems.append(f"[{key}]: unknown section (known: {', '.join(sorted(known))})")
    return problems


__all__ = ["Section", "register_all", "registered", "section", "section_problems"]
