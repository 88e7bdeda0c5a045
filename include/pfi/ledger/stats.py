"""Read-only queries over the ledger: the monthly counts behind the statistics (SC.STAT/ES.02,
per FINESS géographique, months in Paris time) and the trail of deliveries the traces show.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, column, false, func, literal, null, select, union_all

from pfi.ledger.core import LedgerBase
from pfi.ledger.records import DeliveryEvent, IndicatorCount, MonthlyCount, MonthlyInboundCount
from pfi.ledger.schema import (
    CHANNELS,
    DELIVERY_OUTCOMES,
    STATS_TIME_ZONE,
    delivery,
    document,
    event,
    inbound_item,
)


class Statistics(LedgerBase):
    """Counting and tracing."""

    def monthly_counts(self, month_start: date, month_end: date) -> list[MonthlyCount]:
        """Deliveries counted per month × FINESS géographique × document type × channel ×
        action × status × historical × qualified INS, for months in ``[month_start, month_end)``.

        Each delivery counts once, in the month of its outcome (Paris time). The indicators of
        SC.STAT/ES.02 are sums over these rows, e.g. "DMP in flow, succeeded" = channel ``dmp``,
        not historical, status ``sent``; "update or deletion request mails received" = channel
        ``dpi``, action ``replace`` or ``delete``, any status.
        """
        month = delivery.c.stat_month
        keys = (
            month.label("month"),
            delivery.c.finess_geo,
            delivery.c.type_code,
            delivery.c.channel,
            delivery.c.action,
            delivery.c.status,
            delivery.c.historical,
            delivery.c.qualified_ins,
        )
        query = (
            select(*keys, func.count().label("count"))
            .where(
                month >= _first_of_month(month_start), month < _first_of_month(month_end, up=True)
            )
            .group_by(*keys)
            .order_by(*keys)
        )
        with self.engine.connect() as conn:
            return [MonthlyCount.from_row(row._mapping) for row in conn.execute(query)]

    def indicator_counts(self, month_start: date, month_end: date) -> list[IndicatorCount]:
        """Everything the monthly indicators (SC.STAT/ES.02) are summed from, for months (Paris
        time) in ``[month_start, month_end)``, in ONE statement (four parts, ``UNION ALL``; see
        :class:`~pfi.ledger.records.IndicatorCount` for ``basis``):

        - ``outcome``: deliveries ``sent``, ``failed`` or ``refused`` per outcome month
          (``stat_month``: the ``ix_delivery_stats`` column) × FINESS géographique × type ×
          channel × action × status × historical × qualified INS; ``pending`` and ``held`` ones
          have no outcome yet and are not counted;
        - the ``dpi`` channel's rows (documents received by mail) take the FINESS géographique
          of the application mailbox that received the mail (its inbound item), the document's
          when unknown: a received document carries none of its own;
        - ``received``: ``dpi`` replacements and deletions per month the mail was received,
          any status — a request is received once, whether or not the DPI took it yet;
        - ``mail_refused``: mails refused before any document was read, per month received.
        """
        first = _first_of_month(month_start)
        last = _first_of_month(month_end, up=True)
        start, end = _paris_midnight(first), _paris_midnight(last)
        outcome = delivery.c.status.in_(DELIVERY_OUTCOMES)
        in_months = (delivery.c.stat_month >= first) & (delivery.c.stat_month < last)

        def part(basis: str, month: Any, finess: Any, *, action: Any = delivery.c.action) -> Any:
            return (
                literal(basis).label("basis"),
                month.label("month"),
                finess.label("finess_geo"),
                delivery.c.type_code,
                delivery.c.channel,
                action.label("action"),
                delivery.c.status,
                delivery.c.historical,
                delivery.c.qualified_ins,
            )

        def grouped(columns: tuple[Any, ...], source: Any, *conditions: Any) -> Any:
            return (
                select(*columns, func.count().label("count"))
                .select_from(source)
                .where(*conditions)
                .group_by(*columns[1:])
            )

        mail = delivery.outerjoin(inbound_item, inbound_item.c.id == delivery.c.inbound_item_id)
        mail_finess = func.coalesce(inbound_item.c.finess_geo, delivery.c.finess_geo)
        received = func.coalesce(inbound_item.c.received_at, delivery.c.created_at)
        sent_elsewhere = grouped(
            part("outcome", delivery.c.stat_month, delivery.c.finess_geo),
            delivery,
            delivery.c.channel != "dpi",
            outcome,
            in_months,
        )
        to_dpi = grouped(
            part("outcome", delivery.c.stat_month, mail_finess),
            mail,
            delivery.c.channel == "dpi",
            outcome,
            in_months,
        )
        requests = grouped(
            part("received", _paris_month(received), mail_finess),
            mail,
            delivery.c.channel == "dpi",
            delivery.c.action.in_(("replace", "delete")),
            received >= start,
            received < end,
        )
        refused_columns = (
            literal("mail_refused").label("basis"),
            _paris_month(inbound_item.c.received_at).label("month"),
            inbound_item.c.finess_geo,
            null().label("type_code"),
            literal("dpi").label("channel"),
            null().label("action"),
            literal("refused").label("status"),
            false().label("historical"),
            false().label("qualified_ins"),
        )
        refused_mails = (
            select(*refused_columns, func.count().label("count"))
            .where(
                inbound_item.c.kind == "mail",
                inbound_item.c.status == "rejected",
                inbound_item.c.received_at >= start,
                inbound_item.c.received_at < end,
            )
            .group_by(refused_columns[1], refused_columns[2])
        )
        query = union_all(sent_elsewhere, to_dpi, requests, refused_mails).order_by(
            *(column(name) for name in _INDICATOR_KEYS)
        )
        with self.engine.connect() as conn:
            return [IndicatorCount.from_row(row._mapping) for row in conn.execute(query)]

    def monthly_inbound_counts(
        self, month_start: date, month_end: date
    ) -> list[MonthlyInboundCount]:
        """Items received per month (Paris time) × FINESS géographique × source × kind × status,
        for months in ``[month_start, month_end)``: mails refused before any document was read
        (a broken zip) only appear here."""
        month = func.date_trunc(
            "month", func.timezone(STATS_TIME_ZONE, inbound_item.c.received_at)
        ).cast(Date)
        keys = (
            month.label("month"),
            inbound_item.c.finess_geo,
            inbound_item.c.source,
            inbound_item.c.kind,
            inbound_item.c.status,
        )
        start = _paris_midnight(_first_of_month(month_start))
        end = _paris_midnight(_first_of_month(month_end, up=True))
        query = (
            select(*keys, func.count().label("count"))
            .where(inbound_item.c.received_at >= start, inbound_item.c.received_at < end)
            .group_by(*keys)
            .order_by(*keys)
        )
        with self.engine.connect() as conn:
            return [MonthlyInboundCount.from_row(row._mapping) for row in conn.execute(query)]

    def delivery_events(
        self,
        kinds: Sequence[str],
        *,
        channels: Sequence[str] = CHANNELS,
        since: datetime | None = None,
        until: datetime | None = None,
        channel: str | None = None,
        document_unique_id: str | None = None,
        recipient: str | None = None,
        delivery_id: int | None = None,
        limit: int = 10000,
    ) -> list[DeliveryEvent]:
        """Trail lines of these ``kinds`` about deliveries of ``channels``, in the order they were
        written, with their delivery and document: filtered by period (``[since, until)``),
        channel, document, recipient (compared as stored, lower-cased) and delivery."""
        query = (
            select(
                event.c.at,
                event.c.kind,
                event.c.actor,
                event.c.detail,
                delivery.c.id.label("delivery_id"),
                delivery.c.channel,
                delivery.c.recipient,
                delivery.c.action,
                delivery.c.partner_ref,
                document.c.unique_id,
                document.c.type_code,
            )
            .join(delivery, event.c.delivery_id == delivery.c.id)
            .join(document, delivery.c.document_id == document.c.id)
            .where(event.c.kind.in_(tuple(kinds)), delivery.c.channel.in_(tuple(channels)))
            .order_by(event.c.id)
            .limit(limit)
        )
        if since is not None:
            query = query.where(event.c.at >= since)
        if until is not None:
            query = query.where(event.c.at < until)
        if channel is not None:
            query = query.where(delivery.c.channel == channel)
        if document_unique_id is not None:
            query = query.where(document.c.unique_id == document_unique_id)
        if recipient is not None:
            query = query.where(delivery.c.recipient == recipient.strip().lower())
        if delivery_id is not None:
            query = query.where(delivery.c.id == delivery_id)
        with self.engine.connect() as conn:
            return [DeliveryEvent.from_row(row._mapping) for row in conn.execute(query)]


#: The columns of :class:`IndicatorCount` but the count: the report's rows come sorted on them.
_INDICATOR_KEYS = (
    "basis",
    "month",
    "finess_geo",
    "type_code",
    "channel",
    "action",
    "status",
    "historical",
    "qualified_ins",
)


def _paris_month(moment: Any) -> Any:
    """The first day of ``moment``'s month in Paris time (a ``date``)."""
    return func.date_trunc("month", func.timezone(STATS_TIME_ZONE, moment)).cast(Date)


def _first_of_month(day: date, *, up: bool = False) -> date:
    """The first day of ``day``'s month, or of the next month when ``up`` and ``day`` is not one."""
    first = day.replace(day=1)
    if up and first != day:
        first = (first + timedelta(days=32)).replace(day=1)
    return first


def _paris_midnight(day: date) -> Any:
    return func.timezone(STATS_TIME_ZONE, literal(datetime(day.year, day.month, day.day)))


__all__ = ["Statistics"]
