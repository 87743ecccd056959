"""The sequences the product ships, as YAML files in ``newsletter/sequences/library/``.

They are read through importlib.resources so an installed copy (a wheel) finds them as a source
checkout does. The module and the folder share a name: Python imports ``library.py`` (a module
file wins over a folder without ``__init__.py``), and the folder is plain package data.
"""

from importlib.resources import files
from importlib.resources.abc import Traversable

from newsletter.sequences.definition import SequenceDefinition, load_yaml

# In the order staff see them; named one by one so that a file missing from a build is an error
# rather than a sequence quietly not shipped.
SHIPPED_FILES = ("welcome.yaml", "consultation-follow-up.yaml")


def library_folder() -> Traversable:
    return files("newsletter") / "sequences" / "library"


def shipped_yaml(filename: str) -> str:
    """The text of one shipped file, comments included (what `sequences load` would read)."""
    return (library_folder() / filename).read_text(encoding="utf-8")


def shipped_definitions() -> list[SequenceDefinition]:
    return [load_yaml(shipped_yaml(name), source=f"library/{name}") for name in SHIPPED_FILES]
