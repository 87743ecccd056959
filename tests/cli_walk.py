"""Every command of the ``newsletter`` CLI with its required arguments filled in, for tests that must
hold for all of them (a new command is covered without anyone listing it)."""

from __future__ import annotations

from typing import Any


def leaf_commands(group: Any, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """Each command's words, with "1" for every required argument and option (a flag pair such as
    --sent/--resend gets its first form)."""
    found: list[list[str]] = []
    for name, command in group.commands.items():
        words = [*prefix, name]
        if hasattr(command, "commands"):
            found.extend(leaf_commands(command, tuple(words)))
            continue
        for param in command.params:
            if not param.required:
                continue
            if param.param_type_name == "argument":
                words.append("1")
            elif getattr(param, "is_flag", False):
                words.append(param.opts[0])
            else:
                words.extend([param.opts[0], "1"])
        found.append(words)
    return found
