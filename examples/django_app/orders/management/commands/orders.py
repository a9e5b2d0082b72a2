from django.core.management.base import BaseCommand
from orders.models import Order


class Command(BaseCommand):
    help = "List the orders and their status."

    def handle(self, **options):
        for order in Order.objects.order_by("pk"):
            self.stdout.write(f"{order.pk} {order.item} {order.status}")
