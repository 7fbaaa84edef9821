"""dkronweb extension to the /v1 API: `GET /v1/concurrency`, the concurrency keys jobs hold
(issue 16) with their limits and what runs, is queued and waits under each. Read-only: a key's
limits are its jobs' `concurrency_limit` and `rate_limit`."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.services import capacity
from web.api.views import ERRORS, ApiView


class ConcurrencyKeySerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The key as the jobs' runs hold it (rendered)")
    limit = serializers.IntegerField(allow_null=True, help_text="Run at once at most; null: none")
    rate_limit = serializers.CharField(help_text="Starts per window (N/s, N/m, N/h); empty: none")
    running = serializers.IntegerField(help_text="Executions of the key running now")
    queued = serializers.IntegerField(help_text="Admitted, published, not yet started")
    waiting = serializers.IntegerField(help_text="Held until the key (or a slot) has room")


class ConcurrencyView(ApiView):
    @extend_schema(
        operation_id="listConcurrencyKeys",
        summary="Concurrency keys with their limits and counts (dkronweb extension)",
        responses={200: ConcurrencyKeySerializer(many=True), **ERRORS},
        tags=["concurrency"],
    )
    def get(self, request: Request) -> Response:
        data = [asdict(state) for state in capacity.key_states()]
        response = Response(data)
        response["X-Total-Count"] = str(len(data))
        return response
