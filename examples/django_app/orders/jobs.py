"""Found by kiqpy's autodiscovery: `manage.py kiqpy` imports every installed app's jobs.py."""

from orders.models import Order

import kiqpy


class ConfirmOrder(kiqpy.Worker, queue="default"):
    def perform(self, order_id: int) -> None:
        # The row exists: the push was made inside the transaction that saved it, and went
        # to Redis only when that transaction committed.
        order = Order.objects.get(pk=order_id)
        order.status = "confirmed"
        order.save(update_fields=["status"])
