"""Charts for the staff pages: server-rendered SVG (pygal), self-contained and accessible.

Each chart comes back as a ``Chart``: the SVG markup to put inline, and the same figures as a small
table (``columns`` and ``rows``) for a visually hidden or ``<details>`` data table beside it, since a
screen reader cannot read figures out of a drawing.

What every SVG is made to be, whatever pygal does by default:

- **self-contained**: no ``<script>`` (pygal inlines a config script and links its tooltip script from
  a CDN; both are removed: the pages' CSP allows first-party scripts only, and a request to a
  third party would tell it who works on the list), no comment (pygal's credit names its site), no
  external stylesheet, font or link; system fonts only. The namespace declarations
  (``xmlns="http://www.w3.org/2000/svg"``) are names, never fetched.
- **accessible**: ``role="img"`` labelled by a ``<title>`` and described by a ``<desc>`` (what the chart
  shows, and its figures in one sentence), its first two children.
- **readable**: text near black on white (16:1), and series colours that each reach at least 4.5:1
  against the white background (WCAG AA for text; 3:1 is the bar for graphical objects), told apart
  by line style and markers as well as colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pygal
from lxml import etree
from pygal.style import Style

from newsletter.reports.dashboard import LeadFunnel, WeekEngagement
from newsletter.reports.funnel import Funnel

SVG_NS = "http://www.w3.org/2000/svg"
FONTS = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
TEXT = "#1b1b1b"  # 16.9:1 on white
MUTED = "#595959"  # 7:1 on white: axis labels
# Contrast with white: teal 6.1:1, blue 7.2:1, brown 6.6:1, purple 8.1:1.
SERIES = ("#1d6b66", "#1f4e99", "#8a4b08", "#5b2a86")
STAGE_LABELS = {"new": "New", "contacted": "Contacted", "booked": "Booked", "attended": "Attended", "lost": "Lost"}

STYLE = Style(
    background="#ffffff", plot_background="#ffffff", foreground=TEXT, foreground_strong=TEXT,
    foreground_subtle=MUTED, colors=SERIES, font_family=FONTS, label_font_family=FONTS,
    major_label_font_family=FONTS, value_font_family=FONTS, value_label_font_family=FONTS,
    title_font_family=FONTS, legend_font_family=FONTS, tooltip_font_family=FONTS,
    label_font_size=14, major_label_font_size=14, legend_font_size=15, value_font_size=14,
    value_label_font_size=14, opacity="1", opacity_hover="1", guide_stroke_color="#d0d0d0",
    major_guide_stroke_color="#bdbdbd", stroke_width="3", stroke_width_hover="3",
)


@dataclass
class Chart:
    svg: str  # inline SVG markup
    title: str
    description: str
    columns: list[str]  # the data table's header
    rows: list[list[str | int]]  # the same figures as the chart, one row per point or bar


def _number(n: int | float | None) -> str:
    """Whole numbers on axes and in tooltips: pygal hands the axis labels over as floats."""
    return "" if n is None else f"{round(n):,}"


def whole_ticks(top: int, most: int = 6) -> list[int]:
    """Axis labels for counts: whole numbers from 0 past ``top``, at most ``most`` of them (pygal's own
    would repeat "1" and "2" between 0 and 3)."""
    steps = (m * 10 ** e for e in range(0, 19) for m in (1, 2, 5))  # 1, 2, 5, 10, 20, 50, ...
    step = next(st for st in steps if top // st < most)
    return list(range(0, top + step + 1, step)) if top else [0, 1]


def _config(**options: object) -> dict[str, object]:
    return {"style": STYLE, "js": [], "disable_xml_declaration": True, "no_prefix": False,
            "show_legend": True, "legend_at_bottom": True, "legend_at_bottom_columns": 3,
            "print_values": False, "width": 800, "height": 400, "margin": 16,
            "value_formatter": _number, "formatter": _number, **options}


def self_contained(svg: str, title: str, description: str) -> str:
    """pygal's SVG with no script, no comment and no external reference, made an image labelled by
    its ``<title>`` and described by its ``<desc>``."""
    root = etree.fromstring(svg.encode())
    for node in root.xpath("//comment() | //svg:script", namespaces={"svg": SVG_NS}):
        node.getparent().remove(node)
    chart_id = root.get("id") or "chart"
    for attribute in list(root.attrib):
        if attribute.startswith("{http://www.w3.org/1999/xlink}"):
            del root.attrib[attribute]
    root.set("role", "img")
    root.set("aria-labelledby", f"{chart_id}-title")
    root.set("aria-describedby", f"{chart_id}-desc")
    root.set("focusable", "false")
    title_node = etree.Element(f"{{{SVG_NS}}}title", id=f"{chart_id}-title")
    title_node.text = title
    desc_node = etree.Element(f"{{{SVG_NS}}}desc", id=f"{chart_id}-desc")
    desc_node.text = description
    root.insert(0, desc_node)
    root.insert(0, title_node)
    return etree.tostring(root, encoding="unicode")


def _week(day: date) -> str:
    return f"{day:%b} {day.day}"


def engagement_chart(weeks: list[WeekEngagement]) -> Chart:
    """A line per figure over the weeks: emails sent, and deliveries a person opened and clicked."""
    labels = [_week(w.week_of) for w in weeks]
    title = "Engagement by week"
    if weeks:
        last = weeks[-1]
        description = (f"Weekly emails sent, human opens and human clicks over the {len(weeks)} weeks from the week of "
                       f"{_week(weeks[0].week_of)} to the week of {_week(last.week_of)} (so far). In the latest week: "
                       f"{last.sent:,} sent, {last.human_opens:,} opened by a person, {last.human_clicks:,} clicked "
                       f"by a person. Opens and clicks by machines (mail privacy proxies, link scanners) are left out.")
    else:
        description = "No weeks to show."
    top = max((max(w.sent, w.human_opens, w.human_clicks) for w in weeks), default=0)
    chart = pygal.Line(**_config(dots_size=4, include_x_axis=True, y_labels=whole_ticks(top)))
    chart.x_labels = labels
    chart.add("Sent", [w.sent for w in weeks], stroke_style={"width": 3})
    chart.add("Opened by a person", [w.human_opens for w in weeks], stroke_style={"width": 3, "dasharray": "9, 5"})
    chart.add("Clicked by a person", [w.human_clicks for w in weeks], stroke_style={"width": 3, "dasharray": "3, 4"})
    svg = self_contained(chart.render(is_unicode=True), title, description)
    rows: list[list[str | int]] = [[f"Week of {_week(w.week_of)}", w.sent, w.human_opens, w.human_clicks]
                                   for w in weeks]
    return Chart(svg, title, description, ["Week", "Sent", "Opened by a person", "Clicked by a person"], rows)


def funnel_chart(funnel: LeadFunnel) -> Chart:
    """A horizontal bar per stage (leads there now), and one for the leads who ever booked."""
    title = "Lead funnel"
    bars = [(STAGE_LABELS.get(stage, stage), n) for stage, n in funnel.by_stage.items()]
    bars.append(("Ever booked", funnel.booked))
    stages = ", ".join(f"{label.lower()} {n:,}" for label, n in bars[:-1])
    description = (f"{funnel.leads:,} leads by their stage now: {stages}. {funnel.booked:,} have ever booked a "
                   f"consultation, {funnel.booked_by_email:,} of them credited to an email.")
    # Narrower than the line chart: drawn at a phone's width, its labels stay legible.
    chart = pygal.HorizontalBar(**_config(show_legend=False, width=520, height=40 + 44 * len(bars),
                                          y_labels=whole_ticks(max((n for _, n in bars), default=0))))
    drawn = bars[::-1]  # pygal draws the first bar at the bottom: the stages read top down
    chart.x_labels = [label for label, _ in drawn]
    chart.add("Leads", [{"value": n, "color": SERIES[3] if label == "Ever booked" else SERIES[0]}
                        for label, n in drawn])
    svg = self_contained(chart.render(is_unicode=True), title, description)
    return Chart(svg, title, description, ["Stage", "Leads"], [[label, n] for label, n in bars])


# The funnel figures drawn per group: (label, Funnel attribute), each bar's series told apart by colour.
FUNNEL_BARS = (("Leads", "leads"), ("Engaged", "engaged"), ("Booked", "booked"))


def funnel_groups_chart(title: str, groups: dict[str, Funnel], what: str) -> Chart:
    """Bars per group (a source, a month): leads, engaged and booked side by side. ``what`` names a
    group in the description ("source", "month")."""
    parts = "; ".join(f"{name}: " + ", ".join(f"{label.lower()} {getattr(f, attr):,}" for label, attr in FUNNEL_BARS)
                      for name, f in groups.items())
    description = (f"Leads, leads who engaged with an email and leads who booked, by {what}. {parts}."
                   if groups else f"No leads to show by {what}.")
    top = max((f.leads for f in groups.values()), default=0)
    chart = pygal.Bar(**_config(width=520, height=360, y_labels=whole_ticks(top), legend_at_bottom_columns=3,
                                x_label_rotation=0 if len(groups) < 5 else 30))
    chart.x_labels = list(groups)
    for label, attr in FUNNEL_BARS:
        chart.add(label, [getattr(f, attr) for f in groups.values()])
    svg = self_contained(chart.render(is_unicode=True), title, description)
    columns = [what.capitalize(), *(label for label, _ in FUNNEL_BARS)]
    rows: list[list[str | int]] = [[name, *(getattr(f, attr) for _, attr in FUNNEL_BARS)] for name, f in groups.items()]
    return Chart(svg, title, description, columns, rows)
