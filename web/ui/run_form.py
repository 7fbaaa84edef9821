"""The Run now form of a job that declares run parameters: one typed input per parameter.

Django's form fields turn what a browser posts (always text) into the declared types, so the
service (jobs.services.runs.run_params) checks the same values an API client sends as JSON.
"""

from __future__ import annotations

from typing import Any

from django import forms

from jobs import params as job_params

PREFIX = "param"
BOOLS = [("true", "true"), ("false", "false")]


class RunParamsForm(forms.Form):
    """Built from the job's declaration. An empty input is "not given": the default applies
    (the inputs start with it) and a required parameter without one is refused by the service."""

    # The service judges the rules (required, choices); its message names the parameter.
    use_required_attribute = False

    def __init__(self, declaration: list[dict[str, Any]], data: Any = None) -> None:
        super().__init__(data, prefix=PREFIX)
        self.declared = job_params.parse_declaration(declaration)
        for param in self.declared:
            self.fields[param.name] = _field(param)

    def values(self) -> dict[str, Any]:
        """The posted values by name, typed; the empty ones left out (defaults apply)."""
        out: dict[str, Any] = {}
        for param in self.declared:
            value = self.cleaned_data.get(param.name)
            if value in (None, ""):
                continue
            out[param.name] = value == "true" if param.type == "bool" else value
        return out

    def first_error(self) -> str:
        for name, errors in self.errors.items():
            return f"invalid run parameters: {name}: {errors[0]}"
        return ""


def _field(param: job_params.Param) -> forms.Field:
    label = param.name + (" *" if param.required else "")
    common: dict[str, Any] = {
        "label": label,
        "required": False,
        "help_text": param.description,
        "initial": None if param.default is None else job_params.as_text(param.default),
    }
    if param.type == "int":
        return forms.IntegerField(**common)
    if param.type == "bool":
        return forms.ChoiceField(choices=[("", "—"), *BOOLS], **common)
    if param.type == "choice":
        choices = [(c, c) for c in param.choices or ()]
        return forms.ChoiceField(choices=[("", "—"), *choices], **common)
    return forms.CharField(strip=False, max_length=job_params.MAX_VALUE, **common)
