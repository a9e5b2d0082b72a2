"""Found by the kiqpy app's autodiscovery (every installed app's jobs.py)."""

import kiqpy
from djshop.models import Order


class ShipOrder(kiqpy.Worker, retry=False):
    """Needs the committed row: Order.DoesNotExist when pushed before the commit."""

    def perform(self, order_id: int) -> None:
        order = Order.objects.get(pk=order_id)
        order.status = "shipped"
        order.save(update_fields=["status"])
