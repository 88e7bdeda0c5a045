"""The settings sections that the layers above parse for themselves, in one registry.

A section's owner (the DMP client's ``[dmp]``, intake's ``[intake]``…) declares its parser where it
defines its configuration class::

    @section("dmp")
    @dataclass(frozen=True)
    class DmpConfig:
        @classmethod
        def from_settings(cls, settings: Settings) -> DmpConfig: ...   # raises ConfigurationError

and :func:`section_problems` (``pfi config check``) runs every parser it is given, so a section
can be neither forgotten by the check nor misspelt in the file (a table no parser reads is a
problem). Registration happens when the owner's module is imported, so the caller says which
sections it knows: ``pfi config check`` imports every module of the product first
(:func:`pfi.cli.register_all`, a face: base imports no layer above it) and passes them all —
no list is kept by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


def section_problems(settings: Settings, sections: Iterable[Section]) -> list[str]:
    """What each of ``sections``' parsers finds wrong in its section, and the tables none of
    them reads (give every section: :func:`registered` once every owner is imported)."""
    sections = tuple(sections)
    problems = []
    for entry in sections:
        try:
            entry.parse(settings)
        except (ConfigurationError, ValueError, TypeError, LookupError) as exc:
            text = str(exc)  # a parser may name its section itself
            problems.append(text if text.startswith(entry.label) else f"{entry.label}: {text}")
    known = CORE_SECTIONS | {entry.key.split(".")[0] for entry in sections}
    for key in sorted(set(settings.extra) - known):
        problems.append(f"[{key}]: unknown section (known: {', '.join(sorted(known))})")
    return problems


__all__ = ["Section", "registered", "section", "section_problems"]
