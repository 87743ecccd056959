"""Checks an email must pass before it may be scheduled or sent.

Errors block scheduling; warnings are shown to staff and left to their judgement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape

from newsletter.compose.layouts import DIGEST, TEASER
from newsletter.config import Settings
from newsletter.urls import MAX_LEDGER_ID, delivery_values
from newsletter.compose.merge_tags import holds_merge_tag
from newsletter.compose.personalize import placeholders_in, substitute
from newsletter.compose.render import CompiledEmail

# Gmail clips messages whose HTML is larger than 102 KB; measured with real links filled in.
GMAIL_CLIP_BYTES = 102 * 1000
SUBJECT_SOFT_LIMIT = 78
# Inbox previews show 40-140 characters after the subject; a shorter preheader leaves the rest of the
# preview to whatever the email starts with.
PREHEADER_MIN_CHARS = 40

# Words that reveal a health condition or treatment. In a subject line or preheader they show on a
# lock screen and in a shared inbox; the body, behind the open, is the place for them.
HEALTH_TERMS = (
    "depression", "depressed", "depressive", "anxiety", "anxious", "ptsd", "ocd", "bipolar",
    "suicide", "suicidal", "self-harm", "trauma", "addiction", "eating disorder", "schizophrenia",
    "mental illness", "mental health", "psychiatric", "psychiatrist", "diagnosis", "diagnosed",
    "ketamine", "esketamine", "spravato", "infusion", "infusions", "antidepressant",
    "antidepressants", "medication", "prescription", "therapy", "treatment", "treatments",
    "symptom", "symptoms", "disorder", "patient", "relapse", "overdose",
    # Spanish, for the Spanish versions of issues and steps (newsletter.versions).
    "depresión", "deprimido", "deprimida", "depresivo", "depresiva", "ansiedad", "suicidio", "suicida",
    "adicción", "trastorno", "trastornos", "salud mental", "psiquiátrico", "psiquiatra", "diagnóstico",
    "ketamina", "esketamina", "infusión", "infusiones", "antidepresivo", "antidepresivos", "medicación",
    "medicamento", "receta", "terapia", "tratamiento", "tratamientos", "síntoma", "síntomas", "paciente",
    "recaída", "sobredosis",
)
# An <img> loaded over plain http. A warning, not an error: Gmail and Apple Mail still show it (Gmail
# through its own https proxy), but webmail that blocks insecure content and the https web version
# may show it broken; the alt text is what those readers see. Staff fix it in the post, not here.
_HTTP_IMG_RE = re.compile(r'<img\b[^>]*?\bsrc\s*=\s*["\'](http://[^"\']+)', re.IGNORECASE)
_HEALTH_RE = re.compile(r"\b(" + "|".join(re.escape(t) for t in HEALTH_TERMS) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    code: str
    message: str


def health_terms_in(text: str) -> list[str]:
    return sorted({m.group(1).lower() for m in _HEALTH_RE.finditer(text or "")})


def check_email(email: CompiledEmail, settings: Settings) -> list[Finding]:
    findings: list[Finding] = []

    def error(code: str, message: str) -> None:
        findings.append(Finding("error", code, message))

    def warn(code: str, message: str) -> None:
        findings.append(Finding("warning", code, message))

    subject = (email.subject or "").strip()
    if not subject:
        error("subject-missing", "The subject is empty.")
    elif len(subject) > SUBJECT_SOFT_LIMIT:
        warn("subject-long", f"The subject is {len(subject)} characters; phones show about {SUBJECT_SOFT_LIMIT}.")
    preheader = " ".join((email.preheader or "").split())
    if not preheader:
        warn("preheader-missing", "There is no preheader; inboxes will show the first line of the body instead.")
    elif len(preheader) < PREHEADER_MIN_CHARS:
        warn("preheader-short", f"The preheader is {len(preheader)} characters; inbox previews show 40 to 140, "
             "so the rest of the preview is the start of the email. Write at least "
             f"{PREHEADER_MIN_CHARS} characters: a full sentence saying why to open it.")

    for part, body in (("HTML", email.html), ("text", email.text)):
        if "unsubscribe_url" not in placeholders_in(body):
            error("unsubscribe-missing", f"The {part} part has no unsubscribe link.")
    address = (settings.postal_address or "").strip()
    if not address:
        error("postal-address-missing", "NEWSLETTER_POSTAL_ADDRESS is empty; marketing email must carry one.")
    else:
        for part, body in (("HTML", email.html), ("text", email.text)):
            if address not in body and address.replace("&", "&amp;") not in body:
                error("postal-address-missing", f"The {part} part does not show the postal address.")

    for n, image in enumerate(email.images, 1):
        if not image["alt"].strip():
            which = "The hero image" if image.get("role") == "hero" else f"Image {n}"
            error("image-alt-missing", f"{which} ({image['src'] or 'no source'}) has no alt text.")

    # A teaser or digest card must have somewhere to continue reading; a digest of one post is a teaser.
    for title in email.unlinked:
        what, other = (("A teaser", "choose the full layout") if email.layout == TEASER
                       else ("A digest card", "take it out of the digest"))
        error("read-url-missing", f"{what} needs somewhere to continue reading, and the post “{title}” has no "
                                  f"address: give it one ('newsletter posts edit ID --url URL') or {other}.")
    if email.layout == DIGEST and email.post_count < 2:
        warn("digest-one-post", "This digest has one post; add more posts, or choose the teaser layout.")

    own = settings.public_base_url.rstrip("/") + "/"  # our open pixel, http only on a local set-up
    insecure = dict.fromkeys(unescape(src) for src in _HTTP_IMG_RE.findall(email.html) if not src.startswith(own))
    for src in insecure:
        warn("image-http", f"The image {src} is loaded over http://: webmail that blocks insecure content "
             "and the https web version may not show it. Give it its https:// address (in the post, then "
             "import it again; or in the logo setting).")

    size = sent_html_bytes(email, settings)
    if size > GMAIL_CLIP_BYTES:
        error("html-too-large", f"The HTML is {size / 1000:.1f} KB; Gmail clips anything over {GMAIL_CLIP_BYTES // 1000} KB.")

    for field, text in (("subject", email.subject), ("preheader", email.preheader)):
        if holds_merge_tag(text):
            error(f"merge-tag-in-{field}", f"The {field} holds a merge tag: a custom field's value never goes into "
                  f"the {field} (it shows on lock screens and goes to the provider as it is). Use merge tags in "
                  "the email's text only.")
        terms = health_terms_in(text)
        if terms:
            warn(
                f"health-words-in-{field}",
                f"The {field} mentions {', '.join(repr(t) for t in terms)}: it shows on lock screens and "
                "shared inboxes, and reveals more than it should. Keep health details inside the email.",
            )
    return findings


def sent_html_bytes(email: CompiledEmail, settings: Settings) -> int:
    """The HTML's size as a recipient gets it: every placeholder filled with a value as long as any
    real one (the longest delivery token, in every tracked link and the pixel; a long first name)."""
    sample = delivery_values(settings, MAX_LEDGER_ID, "Alexandra")
    return len(substitute(email.html, sample).encode("utf-8"))


def blocking(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


# The checklist staff read: every check by name with its result, passing ones too ---------------------

PASS, WARNING, ERROR = "pass", "warning", "error"


@dataclass(frozen=True)
class Check:
    """One check of ``check_email`` as people name it; ``codes``: the findings it can report."""

    name: str
    codes: tuple[str, ...]


# The one home of the checks' names; every code ``check_email`` reports belongs to exactly one.
CHECKS: tuple[Check, ...] = (
    Check("Subject present and short enough for a phone", ("subject-missing", "subject-long")),
    Check("Preheader present", ("preheader-missing",)),
    Check(f"Preheader at least {PREHEADER_MIN_CHARS} characters, enough to fill an inbox preview", ("preheader-short",)),
    Check("Unsubscribe link in the HTML and text parts", ("unsubscribe-missing",)),
    Check("Postal address in the HTML and text parts", ("postal-address-missing",)),
    Check("Every image has alt text", ("image-alt-missing",)),
    Check("Every image loads over https", ("image-http",)),
    Check(f"HTML under Gmail's {GMAIL_CLIP_BYTES // 1000} KB clipping limit", ("html-too-large",)),
    Check("No merge tag in the subject or preheader", ("merge-tag-in-subject", "merge-tag-in-preheader")),
    Check("No health words in the subject or preheader", ("health-words-in-subject", "health-words-in-preheader")),
    Check("Every teaser and digest card links to its post on the site", ("read-url-missing",)),
    Check("A digest has several posts", ("digest-one-post",)),
    # newsletter.health_policy reports these (with the marks read from the database).
    Check("Nothing marked sensitive goes to a provider the health-information policy keeps it from",
          ("sensitive-field", "sensitive-metadata")),
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    result: str  # PASS | WARNING | ERROR: the worst finding of the check, or PASS when it found none
    findings: tuple[Finding, ...]

    @property
    def label(self) -> str:
        """The result in words (never only a colour or an icon)."""
        return {PASS: "Passed", WARNING: "Warning", ERROR: "Error"}[self.result]


def checklist(findings: list[Finding]) -> list[CheckResult]:
    """Every check with its result, in the order of ``CHECKS``. A finding whose code no check names
    (a check added without a name) still shows, under its own code, so nothing is hidden."""
    results = []
    for check in (*CHECKS, *_unnamed(findings)):
        mine = tuple(f for f in findings if f.code in check.codes)
        worst = ERROR if any(f.level == ERROR for f in mine) else WARNING if mine else PASS
        results.append(CheckResult(check.name, worst, mine))
    return results


def _unnamed(findings: list[Finding]) -> list[Check]:
    named = {code for check in CHECKS for code in check.codes}
    codes = dict.fromkeys(f.code for f in findings if f.code not in named)
    return [Check(code, (code,)) for code in codes]
