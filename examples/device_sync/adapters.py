"""Source adapters: each one fetches one kind of record from a back end for one user.

A real sync server would call an ERP or a CRM here; these return fixed rows so the example
needs no network. ``query`` returns ``{record_id: {field: value}}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

Records = dict[str, dict[str, Any]]


class UnknownSource(LookupError):
    pass


class SourceAdapter:
    name: ClassVar[str]

    def __init__(self, app_name: str, user_id: str) -> None:
        self.app_name, self.user_id = app_name, user_id

    def query(self, params: dict[str, Any] | None = None) -> Records:
        raise NotImplementedError


class Product(SourceAdapter):
    """The catalogue: the same for every user; ``params={"brand": ...}`` filters it."""

    name = "Product"
    CATALOGUE: ClassVar[Records] = {
        "1": {"name": "iPhone", "brand": "Apple", "price": "199.99"},
        "2": {"name": "Pixel", "brand": "Google", "price": "179.99"},
        "3": {"name": "Galaxy", "brand": "Samsung", "price": "189.99"},
    }

    def query(self, params: dict[str, Any] | None = None) -> Records:
        brand = (params or {}).get("brand")
        return {key: dict(row) for key, row in self.CATALOGUE.items()
                if brand is None or row["brand"] == brand}


class Customer(SourceAdapter):
    """The user's own customers."""

    name = "Customer"

    def query(self, params: dict[str, Any] | None = None) -> Records:
        return {f"{self.user_id}-{n}": {"first": first, "last": "Smith",
                                        "sales_rep": self.user_id}
                for n, first in enumerate(("Ann", "Bob"), start=1)}


ADAPTERS: dict[str, type[SourceAdapter]] = {cls.name: cls for cls in (Product, Customer)}


def adapter_for(source: str, app_name: str, user_id: str) -> SourceAdapter:
    try:
        return ADAPTERS[source](app_name, user_id)
    except KeyError:
        raise UnknownSource(f"no adapter for source {source!r}; known: "
                            f"{', '.join(ADAPTERS)}") from None
