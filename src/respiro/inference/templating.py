"""The pages' HTML: Jinja2 templates in inference/templates/, filled with plain data.

page.py (predict --report) and errors_page.py (the errors stage's wrong test cycles)
gather records of strings, numbers and data URIs; the templates hold every tag. One
environment for both: autoescaped, so a recording's file name or a class name the user
chose shows as text, never as markup; StrictUndefined, so a name a template uses and the
code does not give stops the page with an error instead of leaving a blank in it.
"""

from __future__ import annotations

import base64

from jinja2 import Environment, PackageLoader, StrictUndefined

from respiro.evaluation.metrics import format_score

# Loaded through the package (importlib), so an installed wheel finds them as a checkout does.
TEMPLATES = ("respiro.inference", "templates")


def data_uri(mime: str, payload: bytes) -> str:
    """A picture or sound inside the page: the page opens offline and fetches nothing."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def seconds(value: float) -> str:
    """A time for a data attribute: every digit the float has, so the page says what the CSV says."""
    return repr(float(value))


def percent(fraction: float) -> str:
    return f"{100 * fraction:.4f}%"


ENVIRONMENT = Environment(
    loader=PackageLoader(*TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
ENVIRONMENT.filters.update(seconds=seconds, percent=percent, score=format_score)


def render(template: str, **context: object) -> str:
    """`template` (a file name in templates/) filled with `context`."""
    return ENVIRONMENT.get_template(template).render(**context)
