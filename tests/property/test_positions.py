"""Positions and cash always equal what the fills say, exactly."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tradepulse.domain import Account, Fill, Money, Position, Side

fills = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000"), places=2),
        st.integers(1, 500).map(Decimal),
        st.decimals(min_value=Decimal(0), max_value=Decimal("5"), places=4),
    ),
    max_size=60,
)


@given(fills, st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000"), places=2))
def test_position_and_cash_equal_the_sum_of_fills(
    rows: list[tuple[Side, Decimal, Decimal, Decimal]], mark: Decimal
) -> None:
    position = Position(symbol="AAPL")
    account = Account(cash=Money.of("100000"))
    signed_value = Decimal(0)
    signed_qty = Decimal(0)
    fees = Decimal(0)
    for n, (side, price, qty, fee) in enumerate(rows):
        fill = Fill(
            fill_id=f"f{n}",
            client_order_id=f"c{n}",
            symbol="AAPL",
            side=side,
            price=price,
            quantity=qty,
            fee=fee,
        )
        position = position.apply_fill(fill)
        account = account.apply_fill(fill)
        signed_qty += qty * side.sign
        signed_value += qty * price * side.sign
        fees += fee
    assert position.quantity == signed_qty
    assert position.fees == fees
    assert account.cash.amount == Decimal(100000) - signed_value - fees
    # realized + unrealized is exactly the economic PnL of the fills at the mark
    assert position.cost_basis - position.realized_pnl == signed_value
    total = position.realized_pnl + position.unrealized_pnl(mark)
    assert total == signed_qty * mark - signed_value


def test_round_trip_realizes_the_price_difference() -> None:
    pos = Position(symbol="X")
    buy = Fill(fill_id="1", client_order_id="a", symbol="X", side=Side.BUY, price=Decimal("10"), quantity=Decimal(3))
    sell = Fill(
        fill_id="2",
        client_order_id="b",
        symbol="X",
        side=Side.SELL,
        price=Decimal("12.5"),
        quantity=Decimal(5),
    )
    pos = pos.apply_fill(buy).apply_fill(sell)
    assert pos.realized_pnl == Decimal("7.5")
    assert pos.quantity == Decimal(-2)
    assert pos.avg_price == Decimal("12.5")
