"""Owned prompts (factor 2): a Jinja2 template in your repo, rendered to the exact messages sent.

One template holds the whole prompt. ``{{ role("system") }}`` starts a new message with that role;
text before the first marker goes to a message with ``default_role``. Undefined variables are errors
(StrictUndefined), never silently empty. There is no hidden prompt: what ``render`` returns is what the
model gets, byte for byte.
"""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from twelvefactor.errors import UserError
from twelvefactor.messages import Message, Role

if TYPE_CHECKING:
    import jinja2

_ROLES: tuple[str, ...] = get_args(Role)


class Prompt:
    """A template (string or file) that renders to a list of messages."""

    def __init__(self, source: str, *, name: str = "<prompt>", default_role: Role = "user") -> None:
        self.source = source
        self.name = name
        self.default_role: Role = default_role
        # A per-prompt random marker: text inside variables (model output, emails) cannot forge a role switch.
        self._marker = f"\x00{secrets.token_hex(8)}:"
        self._template: jinja2.Template | None = None
        self._placeholder = f"\x01{secrets.token_hex(8)}\x01"
        self._substitutable: bool | None = None
        self._skeletons: dict[tuple[tuple[str, Any], ...], list[tuple[Role, str]]] = {}

    @classmethod
    def from_file(cls, path: str | Path, *, default_role: Role = "user") -> Prompt:
        path = Path(path)
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read prompt template {str(path)!r}: {exc.strerror}") from exc
        return cls(source, name=str(path), default_role=default_role)

    def __repr__(self) -> str:
        return f"Prompt(name={self.name!r})"

    @property
    def template(self) -> jinja2.Template:
        if self._template is None:
            self._template = self._compile()
        return self._template

    def _compile(self) -> jinja2.Template:
        import jinja2  # deferred: keeps `import twelvefactor` fast

        env = jinja2.Environment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # prompts are plain text, not HTML
            keep_trailing_newline=True,
        )
        env.globals["role"] = self._role
        try:
            return env.from_string(self.source)
        except jinja2.TemplateSyntaxError as exc:
            raise UserError(f"prompt {self.name!r} line {exc.lineno}: {exc.message}") from exc

    def _role(self, role: str) -> str:
        if role not in _ROLES:
            raise UserError(f"prompt {self.name!r}: role({role!r}) must be one of {', '.join(_ROLES)}")
        return f"{self._marker}{role}\x00"

    @cached_property
    def variables(self) -> frozenset[str]:
        """The names the template reads (``context``, ``intents``, ``memory``, your own…)."""
        from jinja2 import meta

        return frozenset(meta.find_undeclared_variables(self.template.environment.parse(self.source)))

    def render_text(self, **variables: Any) -> str:
        import jinja2

        try:
            return self.template.render(**variables)
        except jinja2.UndefinedError as exc:
            raise UserError(
                f"prompt {self.name!r}: {exc.message}; pass it as a variable (agent variables or render(...))"
            ) from exc

    def render(self, **variables: Any) -> list[Message]:
        """The exact messages for these variables."""
        context = variables.get("context")
        if isinstance(context, str) and self.substitutable:
            key = self._key(variables)
            if key is not None:
                return self._render_substituting(key, variables, context)
        return [
            Message(role=role, content=content.strip()) for role, content in self._split(self.render_text(**variables))
        ]

    def _split(self, text: str) -> list[tuple[Role, str]]:
        if self._marker not in text:
            return [(self.default_role, text)]
        head, *parts = text.split(self._marker)
        messages: list[tuple[Role, str]] = [(self.default_role, head)] if head.strip() else []
        for part in parts:
            role, _, content = part.partition("\x00")
            messages.append((role, content))  # type: ignore[arg-type]
        return messages

    # The context is the only part of the prompt that changes at every step. When the template prints
    # it as is (``{{ context }}``, never tests or filters it) and does not read ``thread``, the rest
    # is rendered once per set of variables and the context substituted in: same text, a fraction of
    # Jinja's per-render cost.
    @property
    def substitutable(self) -> bool:
        if self._substitutable is None:
            self._substitutable = self._context_is_printed_verbatim()
        return self._substitutable

    def _context_is_printed_verbatim(self) -> bool:
        from jinja2 import nodes

        tree = self.template.environment.parse(self.source)
        names = [node.name for node in tree.find_all(nodes.Name)]
        if "thread" in names:
            return False
        direct = sum(
            1
            for output in tree.find_all(nodes.Output)
            for child in output.nodes
            if isinstance(child, nodes.Name) and child.name == "context"
        )
        return direct == names.count("context")

    def _key(self, variables: dict[str, Any]) -> tuple[tuple[str, Any], ...] | None:
        key = tuple(sorted((k, v) for k, v in variables.items() if k not in ("context", "thread")))
        try:
            hash(key)
        except TypeError:
            return None  # a mutable variable (list, dict): render in full every time
        return key

    def _render_substituting(
        self, key: tuple[tuple[str, Any], ...], variables: dict[str, Any], context: str
    ) -> list[Message]:
        skeleton = self._skeletons.get(key)
        if skeleton is None:
            if len(self._skeletons) > 64:
                self._skeletons.clear()
            text = self.render_text(**{**variables, "context": self._placeholder})
            skeleton = self._skeletons[key] = self._split(text)
        placeholder = self._placeholder
        return [
            Message(
                role=role,
                content=(content.replace(placeholder, context) if placeholder in content else content).strip(),
            )
            for role, content in skeleton
        ]


DEFAULT_TEMPLATE = """\
{{ role("system") }}
You are {{ agent_name }}. Decide the ONE next step of the work below.
Reply with one JSON object and nothing else: one of these lines, with each <...> filled in.

{{ steps }}
{%- if memory %}

Facts you remember from earlier threads:
{{ memory }}
{%- endif %}
{{ role("user") }}
{{ context }}

Reply with the JSON object of the next step."""
