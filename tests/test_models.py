from __future__ import annotations

import pytest

from twelvefactor import FunctionModel, Message, ModelError, ModelRequestsForbidden, ModelResponse, ScriptedModel
from twelvefactor.models import check_real_request, forbid_real_requests, real_requests_allowed

HI = [Message(role="user", content="hi")]


def test_scripted_model_returns_outputs_in_order_and_records_calls() -> None:
    model = ScriptedModel(['{"intent": "a"}', {"intent": "b"}])
    assert model.complete(HI).text == '{"intent": "a"}'
    assert model.complete(HI).text == '{"intent": "b"}'
    assert model.calls == [HI, HI]
    with pytest.raises(ModelError, match="no output left after 2 calls"):
        model.complete(HI)


def test_function_model_sees_the_messages_and_may_return_text_dict_or_response() -> None:
    seen: list[list[Message]] = []

    def fn(messages: list[Message]) -> dict[str, str]:
        seen.append(list(messages))
        return {"intent": "done_for_now", "message": messages[-1].content}

    response = FunctionModel(fn).complete(HI)
    assert response.text == '{"intent": "done_for_now", "message": "hi"}'
    assert response.model == "function:fn" and seen == [HI]
    exact = ModelResponse(text="x", model="m", input_tokens=7, output_tokens=1)
    assert FunctionModel(lambda m: exact).complete(HI) == exact


def test_real_requests_are_forbidden_in_this_suite() -> None:
    # conftest wraps every test in forbid_real_requests()
    assert real_requests_allowed() is False
    with pytest.raises(ModelRequestsForbidden, match="'openai:gpt-4o'"):
        check_real_request("openai:gpt-4o")


def test_the_switch_can_be_lifted_in_a_block() -> None:
    with forbid_real_requests(False):
        assert real_requests_allowed() is True
        check_real_request("x")
    assert real_requests_allowed() is False


def test_the_environment_variable_forbids_requests_without_code_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    import twelvefactor.models.base as base

    monkeypatch.setattr(base, "_allow_override", [])
    monkeypatch.setenv("TWELVEFACTOR_ALLOW_MODEL_REQUESTS", "0")
    assert real_requests_allowed() is False
    monkeypatch.setenv("TWELVEFACTOR_ALLOW_MODEL_REQUESTS", "1")
    assert real_requests_allowed() is True
