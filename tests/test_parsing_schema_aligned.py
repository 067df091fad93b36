"""parse() reads what the schema asks for when exactly one reading of the reply fits it, and raises otherwise.

Scalars, enums and literals inside prose; booleans in prose; numbers as people write them; a class with
one required field from a bare scalar; one-element wrappers; several objects for a list; unquoted
YAML-ish objects. Each "raises" case is where a second reading exists: the parser never counts mentions
or picks the likelier one.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from twelvefactor.errors import ParseError
from twelvefactor.parsing import parse


class Number(Enum):
    ONE = "ONE"
    TWO = "TWO"


class Sentiment(Enum):
    POSITIVE = "pos"
    NEGATIVE = "neg"
    GOOD = "pos"  # an alias of POSITIVE (a second name for the same member)


class Color(Enum):
    RED = "red"
    DARK_BLUE = "dark_blue"
    DARK = "dark"


Answer = Literal["yes", "no", "maybe"]


def refused(text: str, schema: object) -> str:
    with pytest.raises(ParseError) as info:
        parse(text, schema)
    message = str(info.value)
    assert len(message) < 600 and "\n" not in message
    return message


# --- enums and literals inside prose -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is TWO", Number.TWO),
        ("**one** is the answer", Number.ONE),
        ("ONE: the description of ONE", Number.ONE),  # the same member twice is one answer
        ('"Two" is the answer', Number.TWO),
        ("TWO.", Number.TWO),
        ("Two!", Number.TWO),
        ("`two`", Number.TWO),
        ("*TWO*", Number.TWO),
        ("(two)", Number.TWO),
        ("Answer: **TWO** - because it is larger", Number.TWO),
        ("<think>Is it one? Maybe.</think>\nTWO", Number.TWO),
    ],
)
def test_an_enum_member_named_in_prose(text: str, expected: Number) -> None:
    assert parse(text, Number) is expected


def test_enum_names_values_and_aliases_in_prose() -> None:
    assert parse("The sentiment is positive.", Sentiment) is Sentiment.POSITIVE  # by name
    assert parse("pos", Sentiment) is Sentiment.POSITIVE  # by value
    assert parse("I'd call it good", Sentiment) is Sentiment.POSITIVE  # by alias
    assert parse("Sentiment: Negative", Sentiment) is Sentiment.NEGATIVE


def test_the_longest_name_wins_where_names_overlap() -> None:
    assert parse("I would paint it dark blue.", Color) is Color.DARK_BLUE
    assert parse("Dark-Blue", Color) is Color.DARK_BLUE
    assert parse("Make it dark.", Color) is Color.DARK


def test_a_multiple_choice_letter_in_prose() -> None:
    choice = Literal["A", "B", "C", "D"]
    assert parse("The correct answer is C, because a prime has two divisors.", choice) == "C"  # "a" is a word
    assert parse("**B**", choice) == "B"
    assert parse("b", choice) == "B"  # the whole reply, not a word in prose
    refused("A is wrong, so the answer is B.", choice)


@pytest.mark.parametrize(("text", "expected"), [("Yes, definitely.", "yes"), ("**Maybe**", "maybe"), ("NO", "no")])
def test_a_literal_named_in_prose(text: str, expected: str) -> None:
    assert parse(text, Answer) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ONE or TWO",
        "It could be one, but TWO is better",
        "Not ONE but TWO",
        "It is not TWO.",  # a negated mention is no answer
        "Answer: **TWO** - the larger one",  # "one" names ONE: two readings
        "Neither of them.",
    ],
)
def test_several_members_or_none_in_prose_raise(text: str) -> None:
    refused(text, Number)


def test_several_members_raise_naming_them() -> None:
    message = refused("ONE: the smaller. TWO: the larger. ONE again.", Number)
    assert "ONE" in message and "TWO" in message  # never the most-mentioned one


# --- booleans -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('False.\n\nThe statement "2 + 2 = 5" is false', False),
        ("**True**", True),
        ("<answer>false</answer>", False),
        ('{"answer": false}', False),
        ('{"is_valid": true}', True),
        ("[true]", True),
        ("Yes, it is.", True),
        ("The claim is true.", True),
    ],
)
def test_a_boolean_in_prose_markup_or_a_one_field_object(text: str, expected: bool) -> None:
    assert parse(text, bool) is expected


@pytest.mark.parametrize("text", ["true or false?", "The claim is not true.", "Yes and no.", "It depends."])
def test_a_boolean_with_two_readings_raises(text: str) -> None:
    refused(text, bool)


# --- numbers as people write them ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "schema", "expected"),
    [
        ("12,111", int, 12111),
        ("-2,000.00", float, -2000.0),
        ("12,111.123", float, 12111.123),
        ("1/5", float, 0.2),
        ("42.", int, 42),
        ("5 km", float, 5.0),
        ("50%", float, 50.0),  # the number as written: a percent sign is a unit, not a division by 100
        ("$1,200", int, 1200),
        ("The total is 12,111 dollars.", int, 12111),
        ('"3.5"', Decimal, Decimal("3.5")),
        ("**7**", int, 7),
        ('{"result": 42}', int, 42),
        ("[42]", int, 42),
    ],
)
def test_numbers_as_people_write_them(text: str, schema: type, expected: object) -> None:
    assert parse(text, schema) == expected


class Totals(BaseModel):
    total: int
    price: float
    share: float = 0


@pytest.mark.parametrize(
    "text",
    [
        '{"total": 12,111, "price": -2,000.00}',
        '{"total": "12,111", "price": "-2,000.00"}',
        "{total: 12,111, price: -2,000.00}",
        '{"total": 12,111,\n "price": -2,000.00,\n}',
        '{"total": 12111, "price": "-2000 USD"}',
    ],
)
def test_thousands_separators_and_units_inside_objects(text: str) -> None:
    assert parse(text, Totals) == Totals(total=12111, price=-2000.0)


def test_a_percent_and_a_fraction_inside_an_object() -> None:
    assert parse('{"total": 1, "price": 2, "share": "50%"}', Totals).share == 50
    assert parse('{"total": 1, "price": 2, "share": 1/4}', Totals).share == 0.25


def test_commas_between_numbers_in_an_array_are_separators() -> None:
    assert parse("[1,234,567]", list[int]) == [1, 234, 567]
    assert parse('{"xs": [12,111]}', dict[str, list[int]]) == {"xs": [12, 111]}


@pytest.mark.parametrize(
    "text", ["3 apples and 4 pears", "1/0", "between 10 and 20", "12,11", "1,2345", "5 million", "2k", "1.000.000"]
)
def test_numbers_with_two_readings_or_none_raise(text: str) -> None:
    refused(text, int)


def test_a_number_written_for_a_string_field_stays_as_written() -> None:
    class Note(BaseModel):
        text: str

    assert parse('{"text": "12,111"}', Note).text == "12,111"


# --- a class with one required field, wrappers -----------------------------------------------------


class Foo(BaseModel):
    foo: int


class Message(BaseModel):
    intent: Literal["say"] = "say"
    text: str
    loud: bool = False


class Pair(BaseModel):
    a: int
    b: int


def test_a_class_with_one_required_field_from_a_bare_scalar() -> None:
    assert parse("1214", Foo) == Foo(foo=1214)
    assert parse('"1214"', Foo) == Foo(foo=1214)
    assert parse('"hello"', Message) == Message(text="hello")
    assert parse('{"foo": 1214}', Foo) == Foo(foo=1214)


def test_a_class_with_several_required_fields_is_not_built_from_a_scalar() -> None:
    refused("1214", Pair)
    refused("hello there", Message)  # prose is not a bare scalar: the reply was no value at all


def test_a_union_prefers_the_member_that_takes_the_scalar_as_it_is() -> None:
    assert parse("5", int | Foo) == 5
    assert parse("5", Foo | str) == "5"


@pytest.mark.parametrize(
    ("text", "schema", "expected"),
    [
        ('["TWO"]', Number, Number.TWO),
        ('{"answer": "TWO"}', Number, Number.TWO),
        ("[[1, 2, 3]]", list[int], [1, 2, 3]),
        ('{"items": [1, 2, 3]}', list[int], [1, 2, 3]),
        ('[{"foo": 1}]', Foo, Foo(foo=1)),
    ],
)
def test_a_one_element_wrapper_where_the_schema_wants_the_element(text: str, schema: object, expected: object) -> None:
    assert parse(text, schema) == expected


def test_a_one_field_wrapper_that_is_a_field_of_the_item_stays_an_item() -> None:
    class Tagged(BaseModel):
        items: list[int]

    assert parse('{"items": [1, 2]}', list[Tagged]) == [Tagged(items=[1, 2])]


# --- several objects where a list is wanted -------------------------------------------------------


class Item(BaseModel):
    k: int


@pytest.mark.parametrize(
    "text",
    [
        '{"k": 1} {"k": 2}',
        '{"k": 1}\n{"k": 2}',
        'First: {"k": 1}\nSecond: {"k": 2}',
        '```json\n{"k": 1}\n```\n```json\n{"k": 2}\n```',
    ],
)
def test_several_top_level_objects_make_the_list(text: str) -> None:
    assert parse(text, list[Item]) == [Item(k=1), Item(k=2)]


def test_several_objects_for_a_single_object_are_still_two_answers() -> None:
    assert "2 different answers" in refused('{"k": 1} {"k": 2}', Item)


def test_an_object_that_is_no_item_next_to_items_is_an_error() -> None:
    refused('{"k": 1} {"k": 2} {"note": "done"}', list[Item])


# --- unquoted, YAML-ish objects ------------------------------------------------------------------


class Person(BaseModel):
    name: str
    description: str
    full_name: str | None = None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{\n  name: John Smith\n  description: a tall man\n}", Person(name="John Smith", description="a tall man")),
        ("{name: John Smith, description: a tall man}", Person(name="John Smith", description="a tall man")),
        ("{\n  name: **John**\n  description: a **tall** man\n}", Person(name="John", description="a **tall** man")),
        (
            "{\n  name: John, // the first name\n  description: tall # height\n}",
            Person(name="John", description="tall"),
        ),
        ("{name: 'John Smith', description: 'it's tall'}", Person(name="John Smith", description="it's tall")),
        ('name: "John" is his name\ndescription: "tall"', Person(name="John", description="tall")),
        (
            "Full name: John Smith\nname: John\ndescription: tall",
            Person(name="John", description="tall", full_name="John Smith"),
        ),
        (
            "```yaml\nname: John Smith\ndescription: C# developer\n```",
            Person(name="John Smith", description="C# developer"),
        ),
    ],
)
def test_unquoted_objects(text: str, expected: Person) -> None:
    assert parse(text, Person) == expected


def test_a_missing_comma_before_a_key_on_the_same_line_still_starts_a_key() -> None:
    assert parse("{name: John description: tall}", Person) == Person(name="John", description="tall")


def test_a_value_with_two_numbers_for_a_number_field_raises() -> None:
    class Rated(BaseModel):
        score: int

    refused("{score: 4 out of 5}", Rated)
    assert parse("{score: 4 stars}", Rated) == Rated(score=4)
    refused("{score: 5 million}", Rated)  # a multiplier is no unit


# --- properties ---------------------------------------------------------------------------------------

READINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SENTENCES = st.sampled_from(["{}", "The answer is {}.", "**{}**", "{}: that is my answer", "I'd say {}!", '"{}"'])


@READINGS
@given(n=st.integers(-(10**12), 10**12), template=SENTENCES)
def test_an_integer_with_separators_reads_back_alone_in_an_object_and_in_prose(n: int, template: str) -> None:
    written = f"{n:,}"
    assert parse(template.format(written), int) == n
    assert parse(f'{{"total": {written}, "price": 1}}', Totals).total == n


@READINGS
@given(member=st.sampled_from(list(Color)), template=SENTENCES, spelling=st.sampled_from(["name", "value", "words"]))
def test_one_member_named_in_prose_reads_back(member: Color, template: str, spelling: str) -> None:
    written = {"name": member.name, "value": member.value, "words": member.name.replace("_", " ").title()}[spelling]
    assert parse(template.format(written), Color) is member


@READINGS
@given(pair=st.permutations(list(Number)), template=SENTENCES)
def test_two_members_named_in_prose_always_raise(pair: list[Number], template: str) -> None:
    refused(template.format(f"{pair[0].name}, or maybe {pair[1].value.lower()}"), Number)
