from django.core.management.base import BaseCommand
from django.db import transaction
from orders.jobs import ConfirmOrder
from orders.models import Order


class Command(BaseCommand):
    help = "Save an order and push its ConfirmOrder job in the same transaction."

    def add_arguments(self, parser):
        parser.add_argument("item")

    def handle(self, item, **options):
        with transaction.atomic():
            order = Order.objects.create(item=item)
            jid = ConfirmOrder.perform_async(order.pk)  # sent to Redis at the commit
        self.stdout.write(f"order {order.pk} placed; job {jid} pushed at the commit")
