"""An integrator's script on a client generated from the dashboard's OpenAPI document
(openapi-python-client): purchases in one and two steps, a capture, a refund, a filtered
list walked with its cursor, an export, and a problem read as a problem. Run by the
end-to-end test `client::a_generated_client_makes_purchases_and_reads_problems` with
DASHBOARD_URL, DASHBOARD_TOKEN and DASHBOARD_PROJECT set and the client on PYTHONPATH."""

import os
import uuid

from dashboard_client import AuthenticatedClient
from dashboard_client.api.payments import (
    payments_capture,
    payments_create,
    payments_export,
    payments_get,
    payments_list,
    payments_refund,
)
from dashboard_client.models import (
    AmountRequest,
    CardInput,
    Flow,
    Money,
    PaymentView,
    Problem,
    PurchaseRequest,
    RefundRequest,
    Status,
)

client = AuthenticatedClient(base_url=os.environ["DASHBOARD_URL"] + "/api/v1", token=os.environ["DASHBOARD_TOKEN"])
project = int(os.environ["DASHBOARD_PROJECT"])


def purchase(flow, amount):
    card = CardInput(number="4242424242424242", expiry_month=12, expiry_year=2099, cvv="123")
    body = PurchaseRequest(project_id=project, flow=flow, amount=Money(amount=amount, currency="EUR"), card=card)
    payment = payments_create.sync(client=client, body=body, idempotency_key=str(uuid.uuid4()))
    assert isinstance(payment, PaymentView), payment
    return payment


sales = [purchase(Flow.ONE_STEP, amount) for amount in (2500, 1200)]
assert all(sale.status == Status.COMPLETED for sale in sales), sales

hold = purchase(Flow.TWO_STEP, 4000)
assert hold.status == Status.AUTHORIZED, hold.status
captured = payments_capture.sync(
    id=hold.id, client=client, body=AmountRequest(amount=4000), idempotency_key=str(uuid.uuid4())
)
assert isinstance(captured, PaymentView) and captured.status == Status.COMPLETED, captured
refunded = payments_refund.sync(
    id=hold.id,
    client=client,
    body=RefundRequest(amount=1000, reason="Returned goods"),
    idempotency_key=str(uuid.uuid4()),
)
assert isinstance(refunded, PaymentView) and refunded.status == Status.PARTIALLY_REFUNDED, refunded
assert refunded.refundable == 3000, refunded.refundable
assert refunded.operations[-1].reason == "Returned goods", refunded.operations[-1]

# The completed payments one at a time, through the cursor.
first = payments_list.sync(client=client, status=Status.COMPLETED, limit=1)
assert len(first.items) == 1 and first.next_, first
second = payments_list.sync(client=client, status=Status.COMPLETED, limit=1, after=first.next_)
assert len(second.items) == 1 and second.items[0].id != first.items[0].id, second
assert {first.items[0].id, second.items[0].id} == {sale.id for sale in sales}

exported = payments_export.sync_detailed(client=client, status=Status.PARTIALLY_REFUNDED, format_="csv")
assert exported.status_code == 200, exported.status_code
lines = exported.content.decode().strip().splitlines()
assert len(lines) == 2 and hold.id in lines[1], lines

missing = payments_get.sync(id="pay_000000000000000000000000", client=client)
assert isinstance(missing, Problem) and missing.status == 404, missing

print("ok: the generated client paid, captured, refunded, paged, exported and read a problem")
