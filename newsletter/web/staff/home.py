"""The staff home: a greeting and the areas the user's role may open."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from newsletter.staff.roles import Area
from newsletter.web.staff.auth import Require, Staff
from newsletter.web.staff.render import areas_open_to, page

router = APIRouter()


@router.get("/staff/")
def home(request: Request, staff: Staff = Depends(Require(Area.HOME))) -> Response:
    areas = [a for a in areas_open_to(request, staff) if a.area is not Area.HOME]
    return page(request, staff, "staff/home.html", areas=areas)
