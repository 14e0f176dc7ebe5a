"""ApplicationSet: generators produce parameter sets, the template turns each into an
Application (Argo CD's ApplicationSet controller, generate + render halves)."""

from gitmoor.engine.appset.generators import GeneratorContext, GeneratorError, Params, generate
from gitmoor.engine.appset.template import TemplateError, render_application

__all__ = [
    "GeneratorContext",
    "GeneratorError",
    "Params",
    "TemplateError",
    "generate",
    "render_application",
]
