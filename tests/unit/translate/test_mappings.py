"""Mappings, pure: expressions parsed and evaluated, records made from messages, and every
configuration mistake named by its key."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubspot_relay.errors import MappingError
from hubspot_relay.translate.mappings import evaluate, parse, parse_mappings, records

ORDER = {
    "type": "track",
    "event": "Order Completed",
    "userId": "u1",
    "timestamp": "2026-11-02T15:30:00.000Z",
    "context": {"groupId": "acme"},
    "properties": {
        "order_id": "o-100",
        "revenue": "120.50",
        "email": "Buyer@Example.com",
        "products": [
            {"product_id": "p-1", "name": "Widget", "quantity": 2, "price": 10},
            {"product_id": "p-2", "name": "Gadget", "quantity": "1", "price": "100.5"},
        ],
    },
}


@pytest.mark.parametrize(
    ("text", "item", "expected"),
    [
        ("properties.order_id", None, "o-100"),
        ("context.groupId", None, "acme"),
        ("properties.products.1.name", None, "Gadget"),
        ("properties.missing", None, None),
        ("properties.order_id.deeper", None, None),
        ("'closedwon'", None, "closedwon"),
        ('"two words"', None, "two words"),
        ("42", None, 42),
        ("-1.5", None, -1.5),
        ("lowercase(properties.email)", None, "buyer@example.com"),
        ("number(properties.revenue)", None, 120.5),
        ("number(item.quantity)", {"quantity": "3"}, 3),
        ("number(properties.email)", None, None),
        ("date(timestamp)", None, "2026-11-02"),
        ("date(properties.email)", None, None),
        ("join(properties.order_id, '-', item.product_id)", {"product_id": "p-1"}, "o-100-p-1"),
        ("join(properties.order_id, properties.missing)", None, None),
        ("join( properties.order_id , '/' , 7 )", None, "o-100/7"),
        ("item.name", {"name": "Widget"}, "Widget"),
    ],
)
def test_expressions(text: str, item: Any, expected: Any) -> None:
    assert evaluate(parse(text, "k"), ORDER, item) == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "an expression is missing"),
        ("'open", "an unclosed quote"),
        ("upper(properties.x)", "'upper' is not a transform"),
        ("number(a, b)", "number() takes one value"),
        ("join(a, b", "a ')' is missing"),
        ("properties..x", "is not a path"),
        ("a b", "unexpected 'b'"),
        ("{x}", "unexpected '{'"),
    ],
)
def test_bad_expressions_are_named(text: str, error: str) -> None:
    with pytest.raises(
        MappingError, match=r"^mappings\[0\]\.id: .*" + error.replace("(", r"\(").replace(")", r"\)")
    ):
        parse(text, "mappings[0].id")


ORDERS = {
    "name": "orders",
    "when": {"type": "track", "event": "Order Completed"},
    "object": "deals",
    "id_property": "segment_order_id",
    "id": "properties.order_id",
    "properties": {
        "dealname": "join('Order ', properties.order_id)",
        "amount": "number(properties.revenue)",
        "closedate": "date(timestamp)",
        "dealstage": "'closedwon'",
        "description": "properties.note",
    },
    "associate": [{"to": "contact"}, {"to": "company", "label": "Primary"}],
}
LINES = {
    "name": "order-lines",
    "when": {"type": "track", "event": "Order Completed"},
    "object": "line_items",
    "each": "properties.products",
    "id_property": "segment_line_id",
    "id": "join(properties.order_id, '-', item.product_id)",
    "properties": {"name": "item.name", "quantity": "number(item.quantity)", "price": "number(item.price)"},
    "associate": [{"to": "orders"}],
}


def test_an_order_is_a_deal_and_a_line_item_per_product() -> None:
    orders, lines = parse_mappings([ORDERS, LINES], "accounts[0].mappings")
    assert orders.matches(ORDER) and orders.matches({**ORDER, "event": " order completed "})
    assert not orders.matches({**ORDER, "event": "Order Refunded"}) and not orders.matches(
        {"type": "identify"}
    )
    (deal,) = records(orders, ORDER)
    assert (deal.object, deal.id_property, deal.id) == ("deals", "segment_order_id", "o-100")
    assert deal.properties == {
        "dealname": "Order o-100",
        "amount": 120.5,
        "closedate": "2026-11-02",
        "dealstage": "closedwon",
    }
    assert [(a.to, a.label, target) for a, target in deal.associate] == [
        ("contact", None, None),
        ("company", "Primary", "acme"),
    ]
    items = records(lines, ORDER)
    assert [(r.id, r.properties) for r in items] == [
        ("o-100-p-1", {"name": "Widget", "quantity": 2, "price": 10}),
        ("o-100-p-2", {"name": "Gadget", "quantity": 1, "price": 100.5}),
    ]
    assert [a.to for a, _ in items[0].associate] == ["orders"]
    assert records(lines, {**ORDER, "properties": {"order_id": "o-1"}}) == []  # no products: no line item


def test_a_message_without_the_id_makes_no_record_and_says_why() -> None:
    (orders,) = parse_mappings([ORDERS], "m")
    with pytest.raises(MappingError, match="mapping 'orders': no id in the message"):
        records(orders, {**ORDER, "properties": {}})


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"name": "Orders!"}, r"mappings\[0\]\.name"),
        ({"when": {"type": "alias"}}, r"mappings\[0\]\.when"),
        ({"when": {"type": "identify", "event": "x"}}, r"mappings\[0\]\.when\.event"),
        ({"object": ""}, r"mappings\[0\]\.object"),
        ({"id_property": "Order ID"}, r"mappings\[0\]\.id_property"),
        ({"id": 5}, r"mappings\[0\]\.id: an expression"),
        ({"id": "upper(x)"}, r"mappings\[0\]\.id: 'upper' is not a transform"),
        ({"properties": {"Deal Name": "x"}}, r"mappings\[0\]\.properties\.Deal Name"),
        ({"properties": {"dealname": "'x"}}, r"mappings\[0\]\.properties\.dealname: an unclosed quote"),
        ({"associate": [{"to": "invoices"}]}, r"mappings\[0\]\.associate\[0\]\.to: 'invoices' is not"),
        ({"associate": [{"to": "orders"}]}, r"cannot associate its records with themselves"),
        ({"associate": [{"to": "contact", "kind": "x"}]}, r"mappings\[0\]\.associate\[0\]"),
        ({"replace": "yes"}, r"mappings\[0\]\.replace"),
        ({"extra": 1}, r"mappings\[0\]: unknown key 'extra'"),
    ],
)
def test_configuration_mistakes_name_the_key(change: dict[str, Any], error: str) -> None:
    with pytest.raises(MappingError, match=error):
        parse_mappings([{**ORDERS, **change}], "mappings")


def test_two_mappings_with_one_name_are_refused() -> None:
    with pytest.raises(MappingError, match="two mappings are named 'orders'"):
        parse_mappings([ORDERS, ORDERS], "mappings")


@given(st.text(max_size=40))
def test_any_expression_text_parses_or_is_refused_with_the_key(text: str) -> None:
    try:
        expr = parse(text, "k")
    except MappingError as e:
        assert str(e).startswith("k: ")
        return
    evaluate(expr, ORDER, {"x": 1})  # and evaluates without raising
