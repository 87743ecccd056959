"""The staff routes an app serves, each with what it requires (``auth.Require``): the navigation
shows the pages that exist, and the tests walk every staff route to check its guard."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, routing
from fastapi.routing import APIRoute

from newsletter.web.staff.auth import Require

PREFIX = "/staff"


@dataclass(frozen=True)
class StaffRoute:
    path: str
    methods: frozenset[str]
    requirement: Require | None  # None: open to anyone (signing in)


def _api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    # FastAPI 0.16x keeps included routers whole; earlier versions copy their routes into the app.
    if hasattr(routing, "iter_route_contexts"):
        for context in routing.iter_route_contexts(app.routes):
            if isinstance(context.original_route, APIRoute) and context.path:
                yield context.path, context.original_route
        return
    for route in app.routes:
        if isinstance(route, APIRoute):
            yield route.path, route


def _requirement(dependant: Any) -> Require | None:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Require):
            return dependency.call
        found = _requirement(dependency)
        if found is not None:
            return found
    return None


def staff_routes(app: FastAPI) -> list[StaffRoute]:
    return [StaffRoute(path, frozenset(route.methods or ()), _requirement(route.dependant))
            for path, route in _api_routes(app) if path == PREFIX or path.startswith(PREFIX + "/")]


def served_routes(app: FastAPI) -> list[tuple[str, frozenset[str]]]:
    """Every route of the app, public and staff, with its methods: tests walk them all (the security
    headers), so a new page cannot be left out."""
    return [(path, frozenset(route.methods or ())) for path, route in _api_routes(app)]
